// Pairing two clusters, in the manner of `cilium clustermesh connect`: each cluster gets a
// read-only etcd user (remote-<cluster>) and a client certificate on the other's mesh etcd, and
// the Secret kube-system/cilium-clustermesh of each cluster holds the other's signed bundle (one
// key per remote cluster; agents read it as their bundle directory). disconnect removes the key
// (the Secret when empty) and revokes the user, so the old certificate reads nothing any more.
import type { Etcd3 } from 'etcd3';
import {
  issueClientCertificate,
  remoteReaderUser,
  signBundle,
  type KeyPairPem,
} from '../../certs/index.ts';
import { addRemoteReader, revokeRemoteReader } from '../../clustermesh/etcd-auth.ts';

export const MESH_SECRET = { namespace: 'kube-system', name: 'cilium-clustermesh' } as const;

/** Reads and writes the cluster's clustermesh Secret (data: remote cluster name -> bundle). */
export interface SecretStore {
  get(): Promise<Record<string, string> | undefined>;
  /** Writes the whole data map; an empty map deletes the Secret. */
  put(data: Record<string, string>): Promise<void>;
}

export interface ClusterAccess {
  name: string;
  id: number;
  /** what remote agents dial, e.g. https://172.30.0.2:2379 */
  endpoint: string;
  /** a client on the cluster's mesh etcd as its root user (closed by close()) */
  root(): Etcd3;
  close(): void;
  secret: SecretStore;
  /** the mesh CA: issues reader certificates and signs bundles */
  ca: KeyPairPem;
  /** after the Secret changed: e.g. the lab copies it into every node's bundle directory */
  onSecret?(data: Record<string, string>): Promise<void>;
}

/** Connects a and b both ways; returns what it did, one line each. */
export async function connectClusters(a: ClusterAccess, b: ClusterAccess): Promise<string[]> {
  return [...(await grant(a, b)), ...(await grant(b, a))];
}

export async function disconnectClusters(a: ClusterAccess, b: ClusterAccess): Promise<string[]> {
  return [...(await revoke(a, b)), ...(await revoke(b, a))];
}

/** `reader` may read `remote`: user + certificate on remote's etcd, bundle in reader's Secret. */
async function grant(reader: ClusterAccess, remote: ClusterAccess): Promise<string[]> {
  const user = await addRemoteReader(remote.root(), reader.name);
  const client = await issueClientCertificate(remote.ca, { user });
  const bundle = await signBundle(remote.ca, {
    cluster: remote.name,
    clusterId: remote.id,
    endpoints: [remote.endpoint],
    client,
  });
  const data = { ...((await reader.secret.get()) ?? {}), [remote.name]: bundle };
  await reader.secret.put(data);
  await reader.onSecret?.(data);
  return [
    `${remote.name}: etcd user ${user} may read cilium/`,
    `${reader.name}: Secret ${MESH_SECRET.namespace}/${MESH_SECRET.name} holds the bundle of ${remote.name}`,
  ];
}

async function revoke(reader: ClusterAccess, remote: ClusterAccess): Promise<string[]> {
  const data = { ...((await reader.secret.get()) ?? {}) };
  delete data[remote.name];
  await reader.secret.put(data);
  await reader.onSecret?.(data);
  const revoked = await revokeRemoteReader(remote.root(), reader.name);
  return [
    `${reader.name}: bundle of ${remote.name} removed from ${MESH_SECRET.namespace}/${MESH_SECRET.name}`,
    `${remote.name}: etcd user ${remoteReaderUser(reader.name)} ${revoked ? 'revoked' : 'did not exist'}`,
  ];
}
