// The node table: Node objects (InternalIP, spec.podCIDR) over the static table of the config
// (labs without a control plane). Feeds the route reconciler and the ipcache's node rows: this
// node's addresses (its IP and the router IP every pod veth carries) are HOST, other nodes'
// addresses REMOTE_NODE (the datapath's notion of "the pod's own node").
import type { IpcacheTable } from '../ipcache/table.ts';
import type { IpcacheEntry } from '../ipcache/types.ts';
import { ReservedIdentity } from '../identity/types.ts';
import type { Node } from '../k8s/resources.ts';
import type { NodeRouteReconciler } from '../routing/reconciler.ts';
import type { NodeRoute } from '../routing/types.ts';

export class NodeTable {
  private readonly fromApi = new Map<string, NodeRoute>();

  constructor(
    private readonly self: { name: string; ip: string; routerIP: string },
    private readonly staticNodes: readonly NodeRoute[],
    private readonly routes: NodeRouteReconciler,
    private readonly ipcache: IpcacheTable,
    private readonly log: (msg: string, fields: Record<string, unknown>) => void,
  ) {
    this.refreshIpcache();
  }

  /** Nodes queue handler. */
  async onNode(name: string, node: Node | undefined): Promise<void> {
    const row = node && nodeRoute(node);
    if (row) {
      this.fromApi.set(name, row);
      await this.routes.update(row);
    } else {
      if (node) this.log('node without InternalIP or podCIDR: not routed', { node: name });
      this.fromApi.delete(name);
      if (!this.staticNodes.some((n) => n.name === name)) await this.routes.delete(name);
    }
    this.refreshIpcache();
  }

  nodes(): NodeRoute[] {
    const all = new Map(this.staticNodes.map((n) => [n.name, n]));
    for (const [name, n] of this.fromApi) all.set(name, n);
    return [...all.values()];
  }

  private refreshIpcache(): void {
    const rows: IpcacheEntry[] = [];
    for (const n of this.nodes())
      if (n.name !== this.self.name)
        rows.push({ cidr: n.underlayIP, identity: ReservedIdentity['remote-node'] });
    rows.push({ cidr: this.self.ip, identity: ReservedIdentity.host });
    rows.push({ cidr: this.self.routerIP, identity: ReservedIdentity.host });
    this.ipcache.replaceSource('node', rows);
  }
}

function nodeRoute(node: Node): NodeRoute | undefined {
  const ip = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  const podCIDR = node.spec?.podCIDR ?? node.spec?.podCIDRs?.[0];
  if (!ip || !podCIDR) return undefined;
  return { name: node.metadata.name, underlayIP: ip, podCIDR };
}
