// Validation of records read from an UNTRUSTED remote cluster (DESIGN.md "The kvstore"): a remote
// may only speak for itself — its own name and ID, identities in its own range labelled with its
// own name, endpoints inside its own nodes' pod CIDRs, nodes that overlap nothing else in the mesh.
// What fails is returned as a rejection with a stable reason; the caller drops, logs and counts it.
import {
  decodeClusterConfig,
  decodeClusterService,
  decodeIPIdentityPair,
  decodeNode,
} from './codecs.ts';
import { decodeSyncedTime, ipcachePrefixOf, nodeIps, nodePodCidrs } from './codecs.ts';
import { parseKey, type ParsedKey } from './keys.ts';
import { clusterOfLabels, CLUSTER_LABEL_KEY, decodeLabels } from './labels.ts';
import type { ClusterRef, MeshView } from './mesh-view.ts';
import { parseAddr, parsePrefix, prefixContains, prefixesOverlap, sameAddr } from './prefixes.ts';
import type { Prefix } from './prefixes.ts';
import type { MeshNode } from './mesh-view.ts';
import { RejectReason } from './types.ts';
import type {
  ClusterConfig,
  ClusterService,
  IdentityRecord,
  IPIdentityPair,
  NodeRecord,
} from './types.ts';
import type { Rejection, Validated } from './types.ts';

export const MIN_CLUSTER_ID = 1;
export const MAX_CLUSTER_ID = 255;
/** Identities 0..255 are reserved (unknown, host, world, ..., user-reserved). */
export const MAX_RESERVED_IDENTITY = 255;
const CLUSTER_ID_SHIFT = 16;
/** Label sources only the local agent assigns (reserved entities, CIDR identities). */
const LOCAL_ONLY_SOURCES = new Set(['reserved', 'cidr']);

export type RemoteRecord =
  | { kind: 'cluster-config'; cluster: string; config: ClusterConfig }
  | { kind: 'synced'; cluster: string; prefix: string; time: Date }
  | { kind: 'identity'; identity: IdentityRecord }
  | { kind: 'ipcache'; entry: IPIdentityPair }
  | { kind: 'node'; node: NodeRecord; podCidrs: string[]; ips: string[] }
  | { kind: 'service'; service: ClusterService };

/** The cluster ID part of a numeric identity (`clusterID << 16 | local`). */
export function clusterIdOfIdentity(id: number): number {
  return (id >>> CLUSTER_ID_SHIFT) & 0xff;
}

/** First and last identity of a cluster's range, as Cilium's allocator bounds it for ID >= 1. */
export function identityRange(clusterId: number): { first: number; last: number } {
  return {
    first: clusterId << CLUSTER_ID_SHIFT,
    last: (clusterId << CLUSTER_ID_SHIFT) | 0xffff,
  };
}

function reject<T>(reason: Rejection['reason'], detail: string): Validated<T> {
  return { ok: false, error: { reason, detail } };
}

function ok<T>(value: T): Validated<T> {
  return { ok: true, value };
}

/**
 * Validates one record (key and raw value) put by `remote`, whose name and ID the reader got from
 * the remote's connection bundle. `mesh` is the reader's current view of the mesh.
 */
export function validateRemoteRecord(
  remote: ClusterRef,
  mesh: MeshView,
  key: string,
  value: string,
): Validated<RemoteRecord> {
  const parsed = validateRemoteKey(remote, key);
  if (!parsed.ok) return parsed;
  const k = parsed.value;
  switch (k.kind) {
    case 'cluster-config':
      return validateClusterConfig(remote, mesh, value);
    case 'synced': {
      const time = decodeSyncedTime(value);
      return time.ok
        ? ok({ kind: 'synced', cluster: k.cluster, prefix: k.prefix, time: time.value })
        : time;
    }
    case 'identity':
      return validateIdentity(remote, mesh, k.id, value);
    case 'ipcache':
      return validateIpcache(remote, mesh, k, value);
    case 'node':
      return validateNode(remote, mesh, k.node, value);
    case 'service':
      return validateService(remote, k.namespace, k.name, value);
  }
}

/** For deletions too: the key must be of the layout and, where it names a cluster, name `remote`. */
export function validateRemoteKey(remote: ClusterRef, key: string): Validated<ParsedKey> {
  const parsed = parseKey(key);
  if (!parsed.ok) return parsed;
  const k = parsed.value;
  if ('cluster' in k && k.cluster !== remote.name) {
    return reject(
      RejectReason.ClusterNameMismatch,
      `key ${key} names cluster ${k.cluster}, but it was read from ${remote.name}`,
    );
  }
  return parsed;
}

/** A remote's cluster config: a valid ID, not the local one, not one in use, the one announced. */
export function validateClusterConfig(
  remote: ClusterRef,
  mesh: MeshView,
  value: string,
): Validated<RemoteRecord> {
  const decoded = decodeClusterConfig(value);
  if (!decoded.ok) return decoded;
  const { id } = decoded.value;
  const from = `cluster ${remote.name} announces ID ${id}`;
  if (id < MIN_CLUSTER_ID || id > MAX_CLUSTER_ID) {
    return reject(
      RejectReason.ClusterIdInvalid,
      `${from}: cluster IDs are ${MIN_CLUSTER_ID}..${MAX_CLUSTER_ID}`,
    );
  }
  if (id === mesh.local.id) {
    return reject(
      RejectReason.ClusterIdLocal,
      `${from}, the local cluster's (${mesh.local.name}) ID: give each cluster a unique ID`,
    );
  }
  const user = mesh.clusterNameById(id);
  if (user !== undefined && user !== remote.name) {
    return reject(
      RejectReason.ClusterIdInUse,
      `${from}, already used by cluster ${user}: give each cluster a unique ID`,
    );
  }
  if (id !== remote.id) {
    return reject(
      RejectReason.ClusterIdMismatch,
      `${from}, but its connection bundle says ${remote.id}: regenerate the bundle`,
    );
  }
  return ok({ kind: 'cluster-config', cluster: remote.name, config: decoded.value });
}

function checkRemoteIdentity(remote: ClusterRef, id: number, what: string): Rejection | null {
  if (id <= MAX_RESERVED_IDENTITY) {
    return {
      reason: RejectReason.IdentityReserved,
      detail: `${what} carries reserved identity ${id}: remote clusters may not assign reserved identities`,
    };
  }
  const { first, last } = identityRange(remote.id);
  if (id < first || id > last) {
    return {
      reason: RejectReason.IdentityOutOfRange,
      detail: `${what} carries identity ${id} (cluster ID ${clusterIdOfIdentity(id)}), outside ${remote.name}'s range ${first}..${last}`,
    };
  }
  return null;
}

export function validateIdentity(
  remote: ClusterRef,
  mesh: MeshView,
  id: number,
  value: string,
): Validated<RemoteRecord> {
  const range = checkRemoteIdentity(remote, id, `identity key ${id}`);
  if (range) return { ok: false, error: range };
  const labels = decodeLabels(value);
  if (!labels.ok) return labels;
  const local = labels.value.find((l) => LOCAL_ONLY_SOURCES.has(l.source));
  if (local) {
    return reject(
      RejectReason.IdentityReservedLabel,
      `identity ${id} of ${remote.name} carries ${local.source}:${local.key}: such labels are assigned by the local agent only`,
    );
  }
  if (clusterOfLabels(labels.value) === undefined) {
    return reject(
      RejectReason.IdentityClusterLabelMissing,
      `identity ${id} of ${remote.name} has no k8s:${CLUSTER_LABEL_KEY} label`,
    );
  }
  // every cluster label counts, whatever its source: a selector may match any source
  const foreign = labels.value.find((l) => l.key === CLUSTER_LABEL_KEY && l.value !== remote.name);
  if (foreign) {
    const whose = foreign.value === mesh.local.name ? 'the local cluster' : 'another cluster';
    return reject(
      RejectReason.IdentityClusterLabelMismatch,
      `identity ${id} read from ${remote.name} is labelled ${foreign.source}:${CLUSTER_LABEL_KEY}=${foreign.value} (${whose})`,
    );
  }
  return ok({ kind: 'identity', identity: { id, labels: labels.value } });
}

export function validateIpcache(
  remote: ClusterRef,
  mesh: MeshView,
  key: { ip: string; prefixLength: number | null },
  value: string,
): Validated<RemoteRecord> {
  const decoded = decodeIPIdentityPair(value);
  if (!decoded.ok) return decoded;
  const entry = decoded.value;
  const own = ipcachePrefixOf(entry);
  const keyAddr = parseAddr(key.ip)!;
  if (!sameAddr(keyAddr, parseAddr(entry.IP)!) || own.prefixLength !== key.prefixLength) {
    const keyText = key.prefixLength === null ? key.ip : `${key.ip}/${key.prefixLength}`;
    return reject(
      RejectReason.KeyValueMismatch,
      `ipcache key ${keyText} holds an entry for ${entry.IP} (mask ${entry.Mask})`,
    );
  }
  const idError = checkRemoteIdentity(remote, entry.ID, `ipcache entry ${entry.IP}`);
  if (idError) return { ok: false, error: idError };
  const owner = mesh.endpointOwner(keyAddr.toString());
  if (owner !== undefined && owner !== remote.name) {
    return reject(
      RejectReason.IpOwnedElsewhere,
      `ipcache entry ${entry.IP} from ${remote.name} claims an IP of cluster ${owner}`,
    );
  }
  const prefix = parsePrefix(key.prefixLength === null ? key.ip : `${key.ip}/${key.prefixLength}`)!;
  // indexed where the view offers it: a scan costs O(nodes) per entry (minutes for 50,000
  // entries of a 5,000-node remote)
  const nodes = () => [...mesh.nodesOf(remote.name)];
  const inPodCidr = mesh.inPodCidrOf
    ? mesh.inPodCidrOf(remote.name, prefix)
    : nodes().some((n) =>
        parsedNode(n).cidrs.some((c) => prefixContains(c, prefix.addr) && c.len <= prefix.len),
      );
  if (!inPodCidr) {
    return reject(
      RejectReason.IpOutsidePodCidrs,
      `ipcache entry ${entry.IP} lies outside every pod CIDR of ${remote.name}'s ${nodes().length} known nodes`,
    );
  }
  const host = parseAddr(entry.HostIP);
  const isNodeIp = (h: NonNullable<typeof host>) =>
    mesh.isNodeIpOf
      ? mesh.isNodeIpOf(remote.name, h.toString())
      : nodes().some((n) => parsedNode(n).ips.some((a) => sameAddr(a, h)));
  if (!host || !isNodeIp(host)) {
    return reject(
      RejectReason.HostIpUnknown,
      `ipcache entry ${entry.IP} has HostIP ${JSON.stringify(entry.HostIP)}, not an address of a node of ${remote.name}`,
    );
  }
  return ok({ kind: 'ipcache', entry });
}

type Addr = Prefix['addr'];
/** Parsed addresses per MeshNode object; a replaced node (new object) is parsed afresh. */
const parsedNodes = new WeakMap<MeshNode, { cidrs: Prefix[]; ips: Addr[] }>();

function parsedNode(n: MeshNode): { cidrs: Prefix[]; ips: Addr[] } {
  let parsed = parsedNodes.get(n);
  if (!parsed) {
    parsed = {
      cidrs: n.podCidrs.map((c) => parsePrefix(c)).filter((p) => p !== null),
      ips: n.ips.map((ip) => parseAddr(ip)).filter((a) => a !== null),
    };
    parsedNodes.set(n, parsed);
  }
  return parsed;
}

export function validateNode(
  remote: ClusterRef,
  mesh: MeshView,
  keyNode: string,
  value: string,
): Validated<RemoteRecord> {
  const decoded = decodeNode(value);
  if (!decoded.ok) return decoded;
  const node = decoded.value;
  if (node.Cluster !== remote.name) {
    return reject(
      RejectReason.ClusterNameMismatch,
      `node ${node.Name} read from ${remote.name} says it belongs to cluster ${node.Cluster}`,
    );
  }
  if (node.Name !== keyNode) {
    return reject(
      RejectReason.KeyValueMismatch,
      `node key ${keyNode} holds a record named ${node.Name}`,
    );
  }
  if (node.ClusterID !== remote.id) {
    return reject(
      RejectReason.ClusterIdMismatch,
      `node ${node.Name} has ClusterID ${node.ClusterID}, but ${remote.name}'s ID is ${remote.id}`,
    );
  }
  const podCidrs = nodePodCidrs(node);
  const ips = nodeIps(node);
  const clash = findNodeClash(mesh, remote.name, node.Name, podCidrs, ips);
  if (clash) return { ok: false, error: clash };
  return ok({ kind: 'node', node, podCidrs, ips });
}

/** A node may overlap nothing of any other node in the mesh (its own previous version aside). */
function findNodeClash(
  mesh: MeshView,
  cluster: string,
  name: string,
  podCidrs: string[],
  ips: string[],
): Rejection | null {
  const mine = podCidrs.map((c) => ({ text: c, p: parsePrefix(c)! }));
  const myIps = ips.map((ip) => ({ text: ip, a: parseAddr(ip)! }));
  for (const other of mesh.nodes()) {
    if (other.cluster === cluster && other.name === name) continue;
    const who = `node ${other.cluster}/${other.name}`;
    const { cidrs: theirCidrs, ips: theirIps } = parsedNode(other);
    for (const { text, p } of mine) {
      if (
        theirCidrs.some((q) => prefixesOverlap(p, q)) ||
        theirIps.some((a) => prefixContains(p, a))
      ) {
        return {
          reason: RejectReason.PodCidrOverlap,
          detail: `pod CIDR ${text} of node ${cluster}/${name} overlaps ${who}`,
        };
      }
    }
    for (const { text, a } of myIps) {
      if (theirIps.some((b) => sameAddr(a, b)) || theirCidrs.some((q) => prefixContains(q, a))) {
        return {
          reason: RejectReason.NodeIpOverlap,
          detail: `address ${text} of node ${cluster}/${name} is already used by ${who}`,
        };
      }
    }
  }
  return null;
}

export function validateService(
  remote: ClusterRef,
  namespace: string,
  name: string,
  value: string,
): Validated<RemoteRecord> {
  const decoded = decodeClusterService(value);
  if (!decoded.ok) return decoded;
  const svc = decoded.value;
  if (svc.cluster !== remote.name) {
    return reject(
      RejectReason.ClusterNameMismatch,
      `service ${svc.namespace}/${svc.name} read from ${remote.name} names cluster ${svc.cluster}`,
    );
  }
  if (svc.namespace !== namespace || svc.name !== name) {
    return reject(
      RejectReason.KeyValueMismatch,
      `service key ${namespace}/${name} holds ${svc.namespace}/${svc.name}`,
    );
  }
  if (svc.clusterID !== remote.id) {
    return reject(
      RejectReason.ClusterIdMismatch,
      `service ${namespace}/${name} has clusterID ${svc.clusterID}, but ${remote.name}'s ID is ${remote.id}`,
    );
  }
  return ok({ kind: 'service', service: svc });
}
