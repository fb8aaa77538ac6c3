// Kubernetes objects of the mirror tests and benchmark, and helpers to read the mesh etcd.
import type { Etcd3 } from 'etcd3';
import {
  CiliumEndpoints,
  CiliumIdentities,
  EndpointSlices,
  Namespaces,
  Nodes,
  Services,
  type CiliumEndpoint,
  type CiliumIdentity,
  type EndpointSlice,
  type KubeApi,
  type Node,
  type Service,
} from '../../agent/k8s/index.ts';

export const CLUSTER = { name: 'c1', id: 1 };

/** A well-formed WireGuard public key (32 bytes, base64). */
export function wgKey(seed: number): string {
  return Buffer.alloc(32, seed).toString('base64');
}

export function identity(id: number, app: string, ns = 'prod'): CiliumIdentity {
  return {
    metadata: { name: String(id) },
    'security-labels': {
      'k8s:app': app,
      'k8s:io.kubernetes.pod.namespace': ns,
      'k8s:io.cilium.k8s.policy.cluster': CLUSTER.name,
    },
  };
}

/** `lean`: without named ports and state, ~80 bytes less per object (see bench/mesh/mirror.ts). */
export function endpoint(
  name: string,
  ip: string,
  id: number,
  hostIp: string,
  ns = 'prod',
  lean = false,
): CiliumEndpoint {
  return {
    metadata: { name, namespace: ns },
    status: {
      identity: { id },
      networking: { addressing: [{ ipv4: ip }], node: hostIp },
      ...(lean
        ? {}
        : {
            'named-ports': [{ name: 'http', port: 8080, protocol: 'TCP' as const }],
            state: 'ready',
          }),
    },
  };
}

export function node(name: string, ip: string, podCidr: string, wgKey?: string): Node {
  return {
    metadata: {
      name,
      ...(wgKey ? { annotations: { 'network.cilium.io/wg-pub-key': wgKey } } : {}),
    },
    spec: { podCIDR: podCidr, podCIDRs: [podCidr] },
  };
}

export function nodeStatus(ip: string) {
  return { addresses: [{ type: 'InternalIP', address: ip }], nodeInfo: { bootID: 'boot-1' } };
}

export function service(name: string, annotations: Record<string, string>, ns = 'prod'): Service {
  return {
    metadata: { name, namespace: ns, annotations, labels: { tier: 'db' } },
    spec: { selector: { app: 'db' }, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

export function slice(
  name: string,
  svc: string,
  ready: string[],
  notReady: string[] = [],
  ns = 'prod',
): EndpointSlice {
  return {
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    endpoints: [
      ...ready.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
      ...notReady.map((ip) => ({ addresses: [ip], conditions: { ready: false } })),
    ],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

export async function createNamespace(api: KubeApi, name: string): Promise<void> {
  await api.create(Namespaces, { metadata: { name } });
}

export const defs = { CiliumEndpoints, CiliumIdentities, EndpointSlices, Nodes, Services };

/** Every key under `cilium/` with its value. */
export async function meshState(client: Etcd3): Promise<Map<string, string>> {
  const all = await client.getAll().prefix('cilium/').strings();
  return new Map(Object.entries(all));
}

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: last });
}

export interface MeshEvent {
  type: 'put' | 'delete';
  key: string;
  value: string;
  revision: number;
}

/** Watches `cilium/` from `fromRevision` and records every event. */
export async function recordEvents(client: Etcd3, fromRevision: number) {
  const events: MeshEvent[] = [];
  const watcher = await client
    .watch()
    .prefix('cilium/')
    .startRevision(String(fromRevision))
    .create();
  const push =
    (type: 'put' | 'delete') => (kv: { key: Buffer; value: Buffer; mod_revision: string }) =>
      events.push({
        type,
        key: kv.key.toString(),
        value: kv.value.toString(),
        revision: Number(kv.mod_revision),
      });
  watcher.on('put', push('put'));
  watcher.on('delete', push('delete'));
  return { events, cancel: () => watcher.cancel() };
}

export async function currentRevision(client: Etcd3): Promise<number> {
  const res = await client.kv.range({ key: Buffer.from('cilium/'), limit: 1 });
  return Number(res.header.revision);
}

/** Resolves once the watch delivered an event written now (all earlier events are in). */
export async function catchUp(client: Etcd3, rec: { events: MeshEvent[] }): Promise<void> {
  const key = `cilium/test-sentinel/${Date.now()}-${Math.random()}`;
  await client.put(key).value('x');
  await eventually('the sentinel event', async () =>
    rec.events.some((e) => e.key === key) ? true : undefined,
  );
  await client.delete().key(key);
  rec.events.splice(
    0,
    rec.events.length,
    ...rec.events.filter((e) => !e.key.startsWith('cilium/test-sentinel/')),
  );
}
