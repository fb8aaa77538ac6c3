// What a reader already knows about the mesh, the input to remote-record validation: the local
// cluster, the cluster IDs in use, every accepted node (local and remote) and endpoint owners.
// The remote-cluster client keeps such a view up to date; MeshTable is a plain in-memory one.
import { parseAddr, parsePrefix, type Prefix } from './prefixes.ts';

export interface ClusterRef {
  name: string;
  id: number;
}

/** A node as validation needs it: canonical pod CIDRs (`ip/len`) and addresses. Immutable:
 * validation caches parsed addresses per object, so replace a changed node, never mutate it. */
export interface MeshNode {
  cluster: string;
  name: string;
  podCidrs: readonly string[];
  ips: readonly string[];
}

export interface MeshView {
  readonly local: ClusterRef;
  /** The name of the connected cluster (local included) that uses `id`, if any. */
  clusterNameById(id: number): string | undefined;
  /** Every node of every cluster, local included. */
  nodes(): Iterable<MeshNode>;
  /** The nodes of one cluster. */
  nodesOf(cluster: string): Iterable<MeshNode>;
  /** The cluster whose endpoint holds `ip` (a local pod, or an accepted remote entry), if any. */
  endpointOwner(ip: string): string | undefined;
  /**
   * Optional indexed answers for ipcache validation (else it scans `nodesOf`, O(nodes) per entry):
   * whether `prefix` lies inside a pod CIDR of a node of `cluster`, and whether `ip` is a node's.
   */
  inPodCidrOf?(cluster: string, prefix: Prefix): boolean;
  isNodeIpOf?(cluster: string, ip: string): boolean;
}

/** In-memory MeshView, fed by the local node table and by accepted remote records. */
export class MeshTable implements MeshView {
  readonly local: ClusterRef;
  private readonly clusterIds = new Map<number, string>();
  private readonly nodesByCluster = new Map<string, Map<string, MeshNode>>();
  private readonly endpoints = new Map<string, string>();
  /** per cluster: counts of node addresses and of pod CIDR networks (`len/network`) */
  private readonly index = new Map<string, { ips: Counts; cidrs: Counts; lens: Counts }>();

  constructor(local: ClusterRef) {
    this.local = { ...local };
    this.clusterIds.set(local.id, local.name);
  }

  clusterNameById(id: number): string | undefined {
    return this.clusterIds.get(id);
  }

  setCluster(ref: ClusterRef): void {
    for (const [id, name] of this.clusterIds) if (name === ref.name) this.clusterIds.delete(id);
    this.clusterIds.set(ref.id, ref.name);
  }

  /** Forgets a remote cluster: its ID, nodes and endpoints. */
  removeCluster(name: string): void {
    if (name === this.local.name) return;
    for (const [id, owner] of this.clusterIds) if (owner === name) this.clusterIds.delete(id);
    this.nodesByCluster.delete(name);
    this.index.delete(name);
    for (const [ip, owner] of this.endpoints) if (owner === name) this.endpoints.delete(ip);
  }

  upsertNode(node: MeshNode): void {
    let byName = this.nodesByCluster.get(node.cluster);
    if (!byName) this.nodesByCluster.set(node.cluster, (byName = new Map()));
    const old = byName.get(node.name);
    if (old) this.indexNode(old, -1);
    const copy = { ...node, podCidrs: [...node.podCidrs], ips: [...node.ips] };
    byName.set(node.name, copy);
    this.indexNode(copy, 1);
  }

  removeNode(cluster: string, name: string): void {
    const old = this.nodesByCluster.get(cluster)?.get(name);
    if (!old) return;
    this.nodesByCluster.get(cluster)!.delete(name);
    this.indexNode(old, -1);
  }

  inPodCidrOf(cluster: string, prefix: Prefix): boolean {
    const ix = this.index.get(cluster);
    if (!ix) return false;
    for (const len of ix.lens.keys())
      if (Number(len) <= prefix.len && ix.cidrs.has(networkKey(prefix.addr, Number(len))))
        return true;
    return false;
  }

  isNodeIpOf(cluster: string, ip: string): boolean {
    return this.index.get(cluster)?.ips.has(canonicalIp(ip)) ?? false;
  }

  private indexNode(node: MeshNode, delta: 1 | -1): void {
    let ix = this.index.get(node.cluster);
    if (!ix)
      this.index.set(node.cluster, (ix = { ips: new Map(), cidrs: new Map(), lens: new Map() }));
    for (const ip of node.ips) count(ix.ips, canonicalIp(ip), delta);
    for (const text of node.podCidrs) {
      const p = parsePrefix(text);
      if (!p) continue;
      count(ix.cidrs, networkKey(p.addr, p.len), delta);
      count(ix.lens, String(p.len), delta);
    }
  }

  *nodes(): Iterable<MeshNode> {
    for (const byName of this.nodesByCluster.values()) yield* byName.values();
  }

  nodesOf(cluster: string): Iterable<MeshNode> {
    return this.nodesByCluster.get(cluster)?.values() ?? [];
  }

  setEndpoint(ip: string, cluster: string): void {
    this.endpoints.set(canonicalIp(ip), cluster);
  }

  removeEndpoint(ip: string): void {
    this.endpoints.delete(canonicalIp(ip));
  }

  endpointOwner(ip: string): string | undefined {
    return this.endpoints.get(canonicalIp(ip));
  }
}

type Counts = Map<string, number>;

function count(m: Counts, key: string, delta: 1 | -1): void {
  const n = (m.get(key) ?? 0) + delta;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}

/** `kind/len/network bytes`: the network of `addr` with its first `len` bits kept. */
function networkKey(addr: Prefix['addr'], len: number): string {
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return `${addr.kind()}/${len}/${bytes.join('.')}`;
}

function canonicalIp(ip: string): string {
  return parseAddr(ip)?.toString() ?? ip;
}
