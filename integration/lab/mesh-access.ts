// Access to a lab cluster for `isthmus clustermesh connect/disconnect`
// (agent/clustermesh/connect.ts): its mesh etcd as root over the etcd's unix socket, its Secret
// kube-system/cilium-clustermesh through the API server's unix socket, and the Secret "mounted"
// on every node of the cluster: written to the node's bundle directory (as kubelet would).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { readKeyPair } from '../../certs/index.ts';
import { ROOT_USER } from '../../clustermesh/etcd-auth.ts';
import {
  MESH_SECRET,
  type ClusterAccess,
  type SecretStore,
} from '../../agent/clustermesh/connect.ts';
import { RUN_ROOT } from './config.ts';
import { apiRequest, controlPlanePaths, type ApiRequestError } from './control-plane.ts';
import { bundleDirOf, meshPaths } from './mesh-paths.ts';
import { readRecord } from './record.ts';
import { mountSecretOnce } from './secret-mount.ts';

/** A Secret through a lab API server's unix socket. */
export function labSecretStore(apiSocket: string): SecretStore {
  const path = `/api/v1/namespaces/${MESH_SECRET.namespace}/secrets/${MESH_SECRET.name}`;
  return {
    async get() {
      const s = (await apiRequest(apiSocket, 'GET', path).catch((err: ApiRequestError) => {
        if (err.status === 404) return undefined;
        throw err;
      })) as { data?: Record<string, string> } | undefined;
      if (!s) return undefined;
      return Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
    },
    async put(data) {
      if (!Object.keys(data).length) {
        await apiRequest(apiSocket, 'DELETE', path).catch((err: ApiRequestError) => {
          if (err.status !== 404) throw err;
        });
        return;
      }
      const body = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { ...MESH_SECRET },
        type: 'Opaque',
        data: Object.fromEntries(
          Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
        ),
      };
      await apiRequest(apiSocket, 'PUT', path, body).catch(async (err: ApiRequestError) => {
        if (err.status !== 404) throw err;
        await apiRequest(apiSocket, 'POST', path.slice(0, path.lastIndexOf('/')), body);
      });
    },
  };
}

/**
 * Access to a lab's clusters: the mesh etcd over its unix socket as root, the Secret through the
 * API server's unix socket, and the Secret "mounted" on every node: written to its bundle dir.
 */
export async function labClusterAccess(lab: string, clusters: string[]): Promise<ClusterAccess[]> {
  const record = readRecord(`${RUN_ROOT}/${lab}`);
  if (!record)
    throw Object.assign(new Error(`no lab named ${lab}`), { code: 'ISTHMUS_CLUSTERMESH_LAB' });
  const out: ClusterAccess[] = [];
  for (const name of clusters) {
    const cluster = record.plan.clusters.find((c) => c.name === name);
    if (!cluster)
      throw Object.assign(
        new Error(
          `lab ${lab} has no cluster ${name}: it has ${record.plan.clusters.map((c) => c.name).join(', ')}`,
        ),
        { code: 'ISTHMUS_CLUSTERMESH_LAB' },
      );
    const p = meshPaths(record.plan, cluster);
    const cert = (n: string) => readFileSync(join(p.certDir, n));
    let client: Etcd3 | undefined;
    out.push({
      name,
      id: cluster.id,
      endpoints: [p.endpoint],
      origin: `lab ${lab}`,
      close: () => client?.close(),
      root: () =>
        (client ??= new Etcd3({
          hosts: `unix://${p.etcdSocket}`,
          credentials: {
            rootCertificate: readFileSync(p.caFile),
            certChain: cert(`${ROOT_USER}.crt`),
            privateKey: cert(`${ROOT_USER}.key`),
          },
          grpcOptions: { 'grpc.ssl_target_name_override': p.serverName },
        })),
      secret: labSecretStore(controlPlanePaths(record.plan, cluster).apiSocket),
      ca: await readKeyPair(p.caDir, 'ca'),
      // the lab's Secret mount does the same within its period; this makes it immediate
      async onSecret() {
        const apiSocket = controlPlanePaths(record.plan, cluster).apiSocket;
        await mountSecretOnce(apiSocket, cluster.nodes.map(bundleDirOf));
      },
    });
  }
  return out;
}
