// ClusterAccess for a real cluster from its kubeconfig context alone: the install's ConfigMap
// (name, ID, endpoints), the mesh CA Secret and the root client certificate (install.ts), a root
// etcd3 client over mTLS on the mesh etcd, and the clustermesh Secret through CoreV1.
import { KubeConfig } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { clusterConfigKey, isValidClusterName } from '../../clustermesh/kvstore/index.ts';
import { MESH_SECRET, type ClusterAccess, type SecretStore } from './connect.ts';
import {
  coreV1MeshApi,
  MESH_ADMIN_SECRET,
  MESH_CA_SECRET,
  MESH_CONFIG,
  MESH_NAMESPACE,
  type MeshKubeApi,
} from './install.ts';

export type KubeAccessErrorCode =
  | 'ERR_KUBE_CONTEXT'
  | 'ERR_KUBE_API'
  | 'ERR_MESH_NOT_INSTALLED'
  | 'ERR_MESH_INSTALL_INVALID'
  | 'ERR_MESH_ENDPOINT_UNREACHABLE';

export class KubeAccessError extends Error {
  constructor(
    readonly code: KubeAccessErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'KubeAccessError';
  }
}

/** $KUBECONFIG's first file, else ~/.kube/config. */
export const defaultKubeconfig = (): string =>
  process.env.KUBECONFIG?.split(':').find(Boolean) ?? join(homedir(), '.kube', 'config');

/** Loads `file` and selects `context` (default: its current context). */
export function loadContext(file: string, context?: string): { kc: KubeConfig; context: string } {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (cause) {
    throw new KubeAccessError(
      'ERR_KUBE_CONTEXT',
      `cannot read kubeconfig ${file}: ${(cause as Error).message}; give one with --kubeconfig`,
      { cause },
    );
  }
  const name = context ?? kc.getCurrentContext();
  if (!name || !kc.getContextObject(name))
    throw new KubeAccessError(
      'ERR_KUBE_CONTEXT',
      `context ${name || '(none: no current-context)'} not found in ${file}; it has: ${
        kc
          .getContexts()
          .map((c) => c.name)
          .join(', ') || 'no contexts'
      }`,
    );
  kc.setCurrentContext(name);
  return { kc, context: name };
}

/** The clustermesh Secret (remote cluster name -> bundle) over MeshKubeApi. */
export function kubeSecretStore(api: MeshKubeApi): SecretStore {
  return {
    get: () => api.readSecret(MESH_SECRET.name),
    async put(data) {
      if (Object.keys(data).length) await api.writeSecret(MESH_SECRET.name, data);
      else await api.deleteSecret(MESH_SECRET.name);
    },
  };
}

export interface KubeAccessOptions {
  /** how long the mesh etcd may take to answer; default 10 s */
  dialTimeoutMs?: number;
  /** for tests: the Kubernetes side (default: CoreV1 of the context) */
  api?: MeshKubeApi;
}

interface InstallFacts {
  name: string;
  id: number;
  endpoints: string[];
  admin: string;
  serverName: string | undefined;
}

/** Access to the cluster of `context` in `kubeconfig`; checks its mesh etcd answers as root. */
export async function kubeClusterAccess(
  kubeconfig: string,
  context: string | undefined,
  opts: KubeAccessOptions = {},
): Promise<ClusterAccess> {
  const origin = (ctx: string) => `context ${ctx}`;
  const loaded = opts.api ? undefined : loadContext(kubeconfig, context);
  const ctx = loaded?.context ?? context ?? '(given)';
  const api = opts.api ?? coreV1MeshApi(loaded!.kc);
  const facts = await readInstall(api, ctx);
  const ca = await readSecretKeys(api, ctx, MESH_CA_SECRET.name, [
    MESH_CA_SECRET.cert,
    MESH_CA_SECRET.key,
  ]);
  const admin = await readSecretKeys(api, ctx, MESH_ADMIN_SECRET.name, [
    MESH_ADMIN_SECRET.ca,
    MESH_ADMIN_SECRET.cert,
    MESH_ADMIN_SECRET.key,
  ]);
  const root = new Etcd3({
    hosts: facts.admin,
    dialTimeout: opts.dialTimeoutMs ?? 10_000,
    credentials: {
      rootCertificate: Buffer.from(admin[MESH_ADMIN_SECRET.ca]!),
      certChain: Buffer.from(admin[MESH_ADMIN_SECRET.cert]!),
      privateKey: Buffer.from(admin[MESH_ADMIN_SECRET.key]!),
    },
    ...(facts.serverName && {
      grpcOptions: { 'grpc.ssl_target_name_override': facts.serverName },
    }),
  });
  try {
    await checkMeshEtcd(root, facts, ctx, opts.dialTimeoutMs ?? 10_000);
  } catch (err) {
    root.close();
    throw err;
  }
  return {
    name: facts.name,
    id: facts.id,
    endpoints: facts.endpoints,
    origin: origin(ctx),
    root: () => root,
    close: () => root.close(),
    secret: kubeSecretStore(api),
    ca: { certPem: ca[MESH_CA_SECRET.cert]!, keyPem: ca[MESH_CA_SECRET.key]! },
  };
}

const notInstalled = (ctx: string, what: string) =>
  new KubeAccessError(
    'ERR_MESH_NOT_INSTALLED',
    `${what} not found in context ${ctx}: is Isthmus installed with clustermesh enabled in context ${ctx}?`,
  );

async function kubeCall<T>(ctx: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    throw new KubeAccessError(
      'ERR_KUBE_API',
      `reading ${what} in context ${ctx} failed: ${(cause as Error).message}; check the context's API server and credentials`,
      { cause },
    );
  }
}

async function readInstall(api: MeshKubeApi, ctx: string): Promise<InstallFacts> {
  const what = `ConfigMap ${MESH_NAMESPACE}/${MESH_CONFIG.name}`;
  const cm = await kubeCall(ctx, what, () => api.readConfigMap(MESH_CONFIG.name));
  if (!cm) throw notInstalled(ctx, what);
  const invalid = (detail: string) =>
    new KubeAccessError(
      'ERR_MESH_INSTALL_INVALID',
      `${what} in context ${ctx}: ${detail}; reinstall Isthmus with clustermesh enabled`,
    );
  const name = cm[MESH_CONFIG.clusterName] ?? '';
  if (!isValidClusterName(name))
    throw invalid(`${MESH_CONFIG.clusterName} ${JSON.stringify(name)} is not a valid cluster name`);
  const id = Number(cm[MESH_CONFIG.clusterId]);
  if (!Number.isInteger(id) || id < 1 || id > 255)
    throw invalid(
      `${MESH_CONFIG.clusterId} ${JSON.stringify(cm[MESH_CONFIG.clusterId])} is not in 1..255`,
    );
  const endpoints = (cm[MESH_CONFIG.endpoints] ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (!endpoints.length || endpoints.some((e) => !/^https:\/\/[^/]+$/.test(e)))
    throw invalid(
      `${MESH_CONFIG.endpoints} must list https://host:port URLs, got ${JSON.stringify(cm[MESH_CONFIG.endpoints])}`,
    );
  const admin = cm[MESH_CONFIG.adminEndpoint] || endpoints[0]!;
  const serverName = cm[MESH_CONFIG.serverName] || undefined;
  return { name, id, endpoints, admin, serverName };
}

async function readSecretKeys(
  api: MeshKubeApi,
  ctx: string,
  name: string,
  keys: string[],
): Promise<Record<string, string>> {
  const what = `Secret ${MESH_NAMESPACE}/${name}`;
  const data = await kubeCall(ctx, what, () => api.readSecret(name));
  if (!data) throw notInstalled(ctx, what);
  const missing = keys.filter((k) => !data[k]);
  if (missing.length)
    throw new KubeAccessError(
      'ERR_MESH_INSTALL_INVALID',
      `${what} in context ${ctx} lacks ${missing.join(', ')}; reinstall Isthmus with clustermesh enabled`,
    );
  return data;
}

/** One read as root, bounded in time; the stored cluster config must agree with the ConfigMap. */
async function checkMeshEtcd(
  root: Etcd3,
  facts: InstallFacts,
  ctx: string,
  timeoutMs: number,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  let stored: string | null;
  try {
    stored = await Promise.race([root.get(clusterConfigKey(facts.name)).string(), timeout]);
  } catch (cause) {
    throw new KubeAccessError(
      'ERR_MESH_ENDPOINT_UNREACHABLE',
      `the mesh etcd of ${facts.name} (context ${ctx}) at ${facts.admin} did not answer as root: ${(cause as Error).message}; check that the address is reachable from here (or set ${MESH_CONFIG.adminEndpoint} in ${MESH_CONFIG.name}) and that ${MESH_ADMIN_SECRET.name} is a root certificate of its CA`,
      { cause },
    );
  } finally {
    clearTimeout(timer);
  }
  const id = stored ? (JSON.parse(stored) as { id?: number }).id : undefined;
  if (id !== undefined && id !== facts.id)
    throw new KubeAccessError(
      'ERR_MESH_INSTALL_INVALID',
      `context ${ctx}: ConfigMap ${MESH_CONFIG.name} says cluster ID ${facts.id} but the mesh etcd publishes ${id} for ${facts.name}; fix the install`,
    );
}
