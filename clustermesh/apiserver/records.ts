// Kubernetes objects of the local cluster → kvstore keys and values of the mesh layout. Pure:
// `undefined` means "this object exports nothing" (no identity number, not a shared global
// service, ...), which the mirror turns into a delete of the key it had.
import type {
  CiliumIdentity,
  EndpointSlice,
  IpcacheRow,
  Node,
  Service,
} from '../../agent/k8s/index.ts';
import {
  encodeClusterService,
  encodeIPIdentityPair,
  encodeLabels,
  encodeNode,
  identityKey,
  isWireguardKey,
  ipIdentityPairFor,
  ipcacheKey,
  nodeKey,
  nodeRecordFor,
  serviceKey,
  MAX_NUMERIC_IDENTITY,
  type ClusterService,
  type Label,
  type NodeInput,
  type PortConfiguration,
} from '../kvstore/index.ts';
import {
  annotatedPort,
  WG_KEY_ANNOTATION,
  WG_NEXT_KEY_ANNOTATION,
  WG_NEXT_PORT_ANNOTATION,
  WG_PORT_ANNOTATION,
} from '../../agent/wireguard/annotations.ts';

export interface LocalCluster {
  name: string;
  id: number;
}

export interface KvEntry {
  key: string;
  value: string;
}

/** Cilium's global-service annotations (current and legacy spelling). */
export const GLOBAL_SERVICE_ANNOTATIONS = ['service.cilium.io/global', 'io.cilium/global-service'];
export const SHARED_SERVICE_ANNOTATIONS = ['service.cilium.io/shared', 'io.cilium/shared-service'];
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

const DECIMAL = /^[1-9][0-9]*$/;

/** The identity's number (its object name), or undefined when the name is not one. */
export function identityNumber(name: string): number | undefined {
  if (!DECIMAL.test(name)) return undefined;
  const id = Number(name);
  return id <= MAX_NUMERIC_IDENTITY ? id : undefined;
}

/** `cilium/state/identities/v1/id/<N>` → the sorted label string. */
export function identityValue(ci: CiliumIdentity): string | undefined {
  const labels: Label[] = [];
  for (const [sourceKey, value] of Object.entries(ci['security-labels'] ?? {})) {
    const colon = sourceKey.indexOf(':');
    if (colon <= 0) return undefined;
    labels.push({ source: sourceKey.slice(0, colon), key: sourceKey.slice(colon + 1), value });
  }
  if (labels.length === 0) return undefined;
  try {
    return encodeLabels(labels);
  } catch {
    return undefined; // a label Cilium could not encode either (';' in a value, duplicates)
  }
}

export function identityEntry(name: string, ci: CiliumIdentity | undefined): KvEntry | undefined {
  const id = identityNumber(name);
  const value = ci ? identityValue(ci) : undefined;
  return id !== undefined && value !== undefined ? { key: identityKey(id), value } : undefined;
}

export function identityKeyOf(name: string): string | undefined {
  const id = identityNumber(name);
  return id === undefined ? undefined : identityKey(id);
}

/** `cilium/state/ip/v1/default/<ip>` for one endpoint IP. */
export function ipcacheEntry(row: IpcacheRow): KvEntry {
  const pair = ipIdentityPairFor({
    ip: row.ip,
    hostIp: row.hostIP ?? '',
    identity: row.identity,
    namespace: row.namespace,
    pod: row.podName,
    namedPorts: row.namedPorts.map((p) => ({ Name: p.name, Port: p.port, Protocol: p.protocol })),
  });
  return { key: ipcacheKey(row.ip), value: encodeIPIdentityPair(pair) };
}

/** The node's WireGuard keys and ports as node record inputs; a malformed key or port is left
 * out (readers would refuse the whole record), and a next key without a current one too. */
function wireguardOf(node: Node): Partial<NodeInput> {
  const a = node.metadata.annotations ?? {};
  const key = (name: string) => (a[name] && isWireguardKey(a[name]) ? a[name] : undefined);
  const current = key(WG_KEY_ANNOTATION);
  if (!current) return {};
  const port = annotatedPort(a[WG_PORT_ANNOTATION]);
  const next = key(WG_NEXT_KEY_ANNOTATION);
  const nextPort = annotatedPort(a[WG_NEXT_PORT_ANNOTATION]);
  return {
    wireguardPubKey: current,
    ...(port !== undefined && { wireguardPort: port }),
    ...(next && { wireguardPubKeyNext: next }),
    ...(next && nextPort !== undefined && { wireguardPortNext: nextPort }),
  };
}

/** `cilium/state/nodes/v1/<cluster>/<node>`: InternalIPs, pod CIDRs, WireGuard key. */
export function nodeEntry(cluster: LocalCluster, node: Node): KvEntry {
  const spec = node.spec ?? {};
  const podCidrs = spec.podCIDRs?.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
  const internalIps = (node.status?.addresses ?? [])
    .filter((a) => a.type === 'InternalIP')
    .map((a) => a.address);
  const status = node.status as { nodeInfo?: { bootID?: string } } | undefined;
  const record = nodeRecordFor({
    cluster: cluster.name,
    clusterId: cluster.id,
    name: node.metadata.name,
    internalIps,
    podCidrs,
    ...wireguardOf(node),
    ...(status?.nodeInfo?.bootID ? { bootId: status.nodeInfo.bootID } : {}),
  });
  return { key: nodeKey(cluster.name, node.metadata.name), value: encodeNode(record) };
}

function annotated(svc: Service, names: string[]): string | undefined {
  for (const n of names) {
    const v = svc.metadata.annotations?.[n];
    if (v !== undefined) return v.toLowerCase();
  }
  return undefined;
}

/** Exported to the mesh: global, and not opted out with shared=false (Cilium's defaults). */
export function isSharedGlobalService(svc: Service): boolean {
  return (
    annotated(svc, GLOBAL_SERVICE_ANNOTATIONS) === 'true' &&
    annotated(svc, SHARED_SERVICE_ANNOTATIONS) !== 'false'
  );
}

/** The EndpointSlice's service, as `namespace/name`, or undefined when it names none. */
export function sliceServiceKey(slice: EndpointSlice): string | undefined {
  const svc = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return svc && slice.metadata.namespace ? `${slice.metadata.namespace}/${svc}` : undefined;
}

interface ServiceSpec {
  clusterIP?: string;
  clusterIPs?: string[];
  selector?: Record<string, string>;
  ports?: { name?: string; port: number; protocol?: string }[];
}

interface SliceEndpoint {
  addresses?: string[];
  conditions?: { ready?: boolean | null };
}

function frontendsOf(spec: ServiceSpec): Record<string, PortConfiguration> {
  const ports: PortConfiguration = {};
  for (const p of spec.ports ?? [])
    ports[p.name ?? ''] = { Protocol: p.protocol ?? 'TCP', Port: p.port };
  const ips = spec.clusterIPs?.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
  const out: Record<string, PortConfiguration> = {};
  for (const ip of ips) if (ip !== 'None') out[ip] = { ...ports };
  return out;
}

/** Ready endpoints of every slice (Cilium exports only ready backends). */
function backendsOf(slices: readonly EndpointSlice[]): Record<string, PortConfiguration> {
  const out: Record<string, PortConfiguration> = {};
  for (const slice of slices) {
    const ports: PortConfiguration = {};
    for (const p of (slice.ports ?? []) as { name?: string; port?: number; protocol?: string }[]) {
      if (p.port !== undefined)
        ports[p.name ?? ''] = { Protocol: p.protocol ?? 'TCP', Port: p.port };
    }
    for (const ep of (slice.endpoints ?? []) as SliceEndpoint[]) {
      if (ep.conditions?.ready === false) continue;
      for (const ip of ep.addresses ?? []) out[ip] = { ...out[ip], ...ports };
    }
  }
  return out;
}

/** `cilium/state/services/v1/<cluster>/<ns>/<name>` for a shared global service. */
export function serviceEntry(
  cluster: LocalCluster,
  svc: Service | undefined,
  slices: readonly EndpointSlice[],
): KvEntry | undefined {
  if (!svc || !isSharedGlobalService(svc) || !svc.metadata.namespace) return undefined;
  const spec = (svc.spec ?? {}) as ServiceSpec;
  const record: ClusterService = {
    cluster: cluster.name,
    namespace: svc.metadata.namespace,
    name: svc.metadata.name,
    frontends: frontendsOf(spec),
    backends: backendsOf(slices),
    labels: svc.metadata.labels ?? {},
    selector: spec.selector ?? {},
    includeExternal: true,
    shared: true,
    clusterID: cluster.id,
  };
  return {
    key: serviceKey(cluster.name, record.namespace, record.name),
    value: encodeClusterService(record),
  };
}
