// What a reader already knows about the mesh, the input to remote-record validation: the local
// cluster, the cluster IDs in use, every accepted node (local and remote) and endpoint owners.
// The remote-cluster client keeps such a view up to date; MeshTable is a plain in-memory one.
import { parseAddr } from './prefixes.ts';

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
}

/** In-memory MeshView, fed by the local node table and by accepted remote records. */
export class MeshTable implements MeshView {
  readonly local: ClusterRef;
  private readonly clusterIds = new Map<number, string>();
  private readonly nodesByCluster = new Map<string, Map<string, MeshNode>>();
  private readonly endpoints = new Map<string, string>();

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
    for (const [ip, owner] of this.endpoints) if (owner === name) this.endpoints.delete(ip);
  }

  upsertNode(node: MeshNode): void {
    let byName = this.nodesByCluster.get(node.cluster);
    if (!byName) this.nodesByCluster.set(node.cluster, (byName = new Map()));
    byName.set(node.name, { ...node, podCidrs: [...node.podCidrs], ips: [...node.ips] });
  }

  removeNode(cluster: string, name: string): void {
    this.nodesByCluster.get(cluster)?.delete(name);
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

function canonicalIp(ip: string): string {
  return parseAddr(ip)?.toString() ?? ip;
}
