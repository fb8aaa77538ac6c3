// Pairing two clusters, in the manner of `cilium clustermesh connect`: each cluster gets a
// read-only etcd user (remote-<cluster>) and a client certificate on the other's mesh etcd, and
// the Secret kube-system/cilium-clustermesh of each cluster holds the other's signed bundle (one
// key per remote cluster; agents read it as their bundle directory). disconnect removes the key
// (the Secret when empty) and revokes the user, so the old certificate reads nothing any more.
// Both are idempotent: connecting again re-issues the bundle, disconnecting what is not
// connected says so.
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
  endpoints: string[];
  /** a client on the cluster's mesh etcd as its root user (closed by close()) */
  root(): Etcd3;
  close(): void;
  secret: SecretStore;
  /** the mesh CA: issues reader certificates and signs bundles */
  ca: KeyPairPem;
  /** where this access came from, for messages (e.g. `context kind-c1`) */
  origin?: string;
  /** after the Secret changed: e.g. the lab copies it into every node's bundle directory */
  onSecret?(data: Record<string, string>): Promise<void>;
}

export type ConnectErrorCode =
  'ERR_MESH_SAME_CLUSTER' | 'ERR_MESH_SAME_CLUSTER_ID' | 'ERR_MESH_CA_MISMATCH';

export class ConnectError extends Error {
  constructor(
    readonly code: ConnectErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ConnectError';
  }
}

const where = (c: ClusterAccess) => `${c.name}${c.origin ? ` (${c.origin})` : ''}`;

/** Two distinct clusters with distinct IDs, or a ConnectError saying what to fix. */
export function checkPair(a: ClusterAccess, b: ClusterAccess): void {
  if (a.name === b.name)
    throw new ConnectError(
      'ERR_MESH_SAME_CLUSTER',
      `${where(a)} and ${where(b)} are the same cluster ${a.name}: name two different clusters`,
    );
  if (a.id === b.id)
    throw new ConnectError(
      'ERR_MESH_SAME_CLUSTER_ID',
      `${where(a)} and ${where(b)} both have cluster ID ${a.id}: IDs must be unique in the mesh; reinstall one with another cluster ID`,
    );
  // agents verify a bundle with their own mesh CA: a bundle signed by another CA is refused
  if (a.ca.certPem.trim() !== b.ca.certPem.trim())
    throw new ConnectError(
      'ERR_MESH_CA_MISMATCH',
      `${where(a)} and ${where(b)} have different mesh CAs: install both from the same CA (Secret cilium-ca)`,
    );
}

/** Connects a and b both ways; returns what it did, one line each. */
export async function connectClusters(a: ClusterAccess, b: ClusterAccess): Promise<string[]> {
  checkPair(a, b);
  return [...(await grant(a, b)), ...(await grant(b, a))];
}

export async function disconnectClusters(a: ClusterAccess, b: ClusterAccess): Promise<string[]> {
  checkPair(a, b);
  return [...(await revoke(a, b)), ...(await revoke(b, a))];
}

const secretName = `${MESH_SECRET.namespace}/${MESH_SECRET.name}`;

/** `reader` may read `remote`: user + certificate on remote's etcd, bundle in reader's Secret. */
async function grant(reader: ClusterAccess, remote: ClusterAccess): Promise<string[]> {
  const user = await addRemoteReader(remote.root(), reader.name);
  const client = await issueClientCertificate(remote.ca, { user });
  const bundle = await signBundle(remote.ca, {
    cluster: remote.name,
    clusterId: remote.id,
    endpoints: remote.endpoints,
    client,
  });
  const before = (await reader.secret.get()) ?? {};
  const data = { ...before, [remote.name]: bundle };
  await reader.secret.put(data);
  await reader.onSecret?.(data);
  return [
    `${remote.name}: etcd user ${user} may read cilium/`,
    `${reader.name}: Secret ${secretName} holds the bundle of ${remote.name}${remote.name in before ? ' (replaced: was already connected)' : ''}`,
  ];
}

async function revoke(reader: ClusterAccess, remote: ClusterAccess): Promise<string[]> {
  const data = { ...((await reader.secret.get()) ?? {}) };
  const had = remote.name in data;
  delete data[remote.name];
  if (had) {
    await reader.secret.put(data);
    await reader.onSecret?.(data);
  }
  const revoked = await revokeRemoteReader(remote.root(), reader.name);
  return [
    had
      ? `${reader.name}: bundle of ${remote.name} removed from ${secretName}`
      : `${reader.name}: ${secretName} held no bundle of ${remote.name} (not connected)`,
    `${remote.name}: etcd user ${remoteReaderUser(reader.name)} ${revoked ? 'revoked' : 'did not exist (not connected)'}`,
  ];
}
