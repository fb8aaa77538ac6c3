// What an Isthmus install with clustermesh enabled puts into each cluster's kube-system, so that
// `isthmus clustermesh connect` needs nothing but two kubeconfig contexts (as `cilium clustermesh
// connect` reads cilium-ca and the clustermesh-apiserver's admin certificate). helm/ creates the
// same objects; the lab writes them at `lab up` (integration/lab/mesh.ts).
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { KeyPairPem } from '../../certs/index.ts';

export const MESH_NAMESPACE = 'kube-system';

/** ConfigMap: the cluster's identity in the mesh and where its mesh etcd answers. */
export const MESH_CONFIG = {
  name: 'isthmus-clustermesh',
  clusterName: 'cluster-name',
  clusterId: 'cluster-id',
  /** comma-separated URLs remote agents dial (https://ip:2379), written into bundles */
  endpoints: 'endpoints',
  /** optional: the URL the operator's CLI dials as root (default: the first endpoint) */
  adminEndpoint: 'admin-endpoint',
  /** optional: the name to verify in the mesh etcd's certificate instead of the URL's host */
  serverName: 'server-name',
} as const;

/** Secret: the mesh CA (signs bundles, issues reader certificates); one CA for the whole mesh. */
export const MESH_CA_SECRET = { name: 'cilium-ca', cert: 'ca.crt', key: 'ca.key' } as const;

/** Secret: a client certificate with CN=root for the cluster's mesh etcd (users and roles). */
export const MESH_ADMIN_SECRET = {
  name: 'clustermesh-apiserver-admin-cert',
  ca: 'ca.crt',
  cert: 'tls.crt',
  key: 'tls.key',
} as const;

/** Secret and ConfigMap access in kube-system; data values are plain strings (not base64). */
export interface MeshKubeApi {
  readSecret(name: string): Promise<Record<string, string> | undefined>;
  /** creates or replaces */
  writeSecret(name: string, data: Record<string, string>): Promise<void>;
  /** false when there was none */
  deleteSecret(name: string): Promise<boolean>;
  readConfigMap(name: string): Promise<Record<string, string> | undefined>;
  writeConfigMap(name: string, data: Record<string, string>): Promise<void>;
}

export interface MeshInstall {
  clusterName: string;
  clusterId: number;
  endpoints: string[];
  adminEndpoint?: string;
  serverName?: string;
  ca: KeyPairPem;
  /** CN=root client certificate */
  admin: KeyPairPem;
}

/** Writes the install's ConfigMap and Secrets (idempotent). */
export async function writeMeshInstall(api: MeshKubeApi, i: MeshInstall): Promise<void> {
  await api.writeConfigMap(MESH_CONFIG.name, {
    [MESH_CONFIG.clusterName]: i.clusterName,
    [MESH_CONFIG.clusterId]: String(i.clusterId),
    [MESH_CONFIG.endpoints]: i.endpoints.join(','),
    ...(i.adminEndpoint && { [MESH_CONFIG.adminEndpoint]: i.adminEndpoint }),
    ...(i.serverName && { [MESH_CONFIG.serverName]: i.serverName }),
  });
  await api.writeSecret(MESH_CA_SECRET.name, {
    [MESH_CA_SECRET.cert]: i.ca.certPem,
    [MESH_CA_SECRET.key]: i.ca.keyPem,
  });
  await api.writeSecret(MESH_ADMIN_SECRET.name, {
    [MESH_ADMIN_SECRET.ca]: i.ca.certPem,
    [MESH_ADMIN_SECRET.cert]: i.admin.certPem,
    [MESH_ADMIN_SECRET.key]: i.admin.keyPem,
  });
}

const decode = (data: Record<string, string> | undefined) =>
  Object.fromEntries(
    Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
const encode = (data: Record<string, string>) =>
  Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));

const statusOf = (err: unknown): number | undefined => (err as { code?: unknown }).code as number;

async function orUndefined<T>(p: Promise<T>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** MeshKubeApi over @kubernetes/client-node's CoreV1Api. */
export function coreV1MeshApi(kc: KubeConfig): MeshKubeApi {
  const core = kc.makeApiClient(CoreV1Api);
  const namespace = MESH_NAMESPACE;
  const meta = (name: string) => ({ name, namespace });
  return {
    async readSecret(name) {
      const s = await orUndefined(core.readNamespacedSecret({ name, namespace }));
      return s && decode(s.data);
    },
    async writeSecret(name, data) {
      const body = { apiVersion: 'v1', kind: 'Secret', metadata: meta(name), type: 'Opaque' };
      const full = { ...body, data: encode(data) };
      const replaced = await orUndefined(
        core.replaceNamespacedSecret({ name, namespace, body: full }),
      );
      if (!replaced) await core.createNamespacedSecret({ namespace, body: full });
    },
    async deleteSecret(name) {
      return (await orUndefined(core.deleteNamespacedSecret({ name, namespace }))) !== undefined;
    },
    async readConfigMap(name) {
      const c = await orUndefined(core.readNamespacedConfigMap({ name, namespace }));
      return c && (c.data ?? {});
    },
    async writeConfigMap(name, data) {
      const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(name), data };
      const replaced = await orUndefined(
        core.replaceNamespacedConfigMap({ name, namespace, body }),
      );
      if (!replaced) await core.createNamespacedConfigMap({ namespace, body });
    },
  };
}
