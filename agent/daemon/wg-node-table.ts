// The node's WireGuard node table: this cluster's Nodes (listed from Kubernetes) merged with the
// remote clusters' nodes (ClusterMesh node records). Names are `<cluster>/<node>`, unique in the
// mesh. Each row's pod IPs outside its pod CIDRs come from the ipcache (HostedPodIPs).
import type { RouteNetlink } from '../routing/types.ts';
import type { WgNode } from '../wireguard/types.ts';
import { HostedPodIPs } from './hosted-pod-ips.ts';

export class WgNodeTable {
  /** the local cluster's rows as last listed (undefined: not listed yet) */
  private local: WgNode[] | undefined;
  private readonly remote = new Map<string, WgNode>();
  readonly hosted = new HostedPodIPs();
  /** underlay IPs of nodes whose pod traffic the tunnel carries: no native route for them */
  readonly tunnelled = new Set<string>();

  get localListed(): boolean {
    return this.local !== undefined;
  }

  setLocal(rows: WgNode[]): void {
    this.local = rows;
    for (const n of rows) this.tunnelled.add(n.nodeIP);
  }

  upsertRemote(row: WgNode): void {
    this.tunnelled.add(row.nodeIP);
    this.remote.set(row.name, row);
  }

  /** True when the row was there. */
  deleteRemote(name: string): boolean {
    return this.remote.delete(name);
  }

  /** Local rows first, then remote ones, each with its hosted pod IPs. */
  rows(): WgNode[] {
    const all = [...(this.local ?? []), ...this.remote.values()];
    return all.map((n) => ({ ...n, podIPs: this.hosted.outside(n.nodeIP, n.podCIDRs) }));
  }
}

/** Native routes via a tunnelled node are not installed: the tunnel's routes own its prefixes
 * (`ip route replace` by both would flip the prefix between plaintext and the tunnel). */
export function withoutTunnelled(
  inner: RouteNetlink,
  tunnelled: ReadonlySet<string>,
): RouteNetlink {
  return {
    listOwned: () => inner.listOwned(),
    replace: async (r) => (tunnelled.has(r.via) ? undefined : inner.replace(r)),
    remove: (dst) => inner.remove(dst),
  };
}
