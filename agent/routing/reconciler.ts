// Keeps the node's main routing table in line with the node table: one route per remote node,
// `podCIDR via underlayIP`, tagged with our protocol so we never touch routes we did not make.
// update/delete act on one row; prune is the full pass (also run periodically) that repairs drift
// and removes routes of nodes that left while we were not looking.
import ipaddr from 'ipaddr.js';
import type { NodeRoute, OwnedRoute, RouteNetlink } from './types.ts';

export type RowStatus = { ok: true } | { ok: false; error: string };

export interface ReconcilerOptions {
  /** period of the full pass; 0 disables it */
  intervalMs?: number;
  onError?: (err: unknown) => void;
}

export class NodeRouteReconciler {
  private readonly nodes = new Map<string, NodeRoute>();
  private readonly status = new Map<string, RowStatus>();
  private timer: NodeJS.Timeout | undefined;
  /** serialises passes so a periodic prune never races an update */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly localNode: string,
    private readonly netlink: RouteNetlink,
    private readonly options: ReconcilerOptions = {},
  ) {}

  async start(initial: NodeRoute[]): Promise<void> {
    for (const node of initial) this.nodes.set(node.name, validateNode(node));
    await this.prune();
    const interval = this.options.intervalMs ?? 10_000;
    if (interval > 0) {
      this.timer = setInterval(() => {
        this.prune().catch((err) => this.options.onError?.(err));
      }, interval);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Adds or changes a node and installs its route. Idempotent. */
  update(node: NodeRoute): Promise<void> {
    const valid = validateNode(node);
    this.nodes.set(valid.name, valid);
    return this.serial(async () => {
      const desired = this.desired().get(valid.podCIDR);
      if (desired) await this.apply(valid.name, () => this.netlink.replace(desired));
    });
  }

  /** Removes a node and its route. Deleting an unknown node is not an error. */
  delete(name: string): Promise<void> {
    const node = this.nodes.get(name);
    this.nodes.delete(name);
    this.status.delete(name);
    if (!node || name === this.localNode) return this.serial(async () => {});
    return this.serial(() => this.netlink.remove(node.podCIDR));
  }

  /** Full pass: installs every missing or wrong route and removes every owned route not desired. */
  prune(): Promise<void> {
    return this.serial(async () => {
      const desired = this.desired();
      const actual = new Map((await this.netlink.listOwned()).map((r) => [r.dst, r.via]));
      for (const [dst] of actual) if (!desired.has(dst)) await this.netlink.remove(dst);
      for (const node of this.nodes.values()) {
        const route = desired.get(node.podCIDR);
        if (!route || actual.get(route.dst) === route.via) {
          if (route) this.status.set(node.name, { ok: true });
          continue;
        }
        await this.apply(node.name, () => this.netlink.replace(route));
      }
    });
  }

  statusOf(name: string): RowStatus | undefined {
    return this.status.get(name);
  }

  table(): NodeRoute[] {
    return [...this.nodes.values()];
  }

  private desired(): Map<string, OwnedRoute> {
    const routes = new Map<string, OwnedRoute>();
    for (const node of this.nodes.values()) {
      if (node.name === this.localNode) continue;
      routes.set(node.podCIDR, { dst: node.podCIDR, via: node.underlayIP });
    }
    return routes;
  }

  private async apply(name: string, op: () => Promise<void>): Promise<void> {
    try {
      await op();
      this.status.set(name, { ok: true });
    } catch (err) {
      this.status.set(name, { ok: false, error: err instanceof Error ? err.message : String(err) });
      this.options.onError?.(err);
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}

/** Returns the node with a canonical pod CIDR, or throws a coded error saying what is wrong. */
export function validateNode(node: NodeRoute): NodeRoute {
  const fail = (what: string): never => {
    throw Object.assign(new Error(`node ${JSON.stringify(node.name)}: ${what}`), {
      code: 'ISTHMUS_BAD_NODE',
    });
  };
  if (!node.name) fail('has no name');
  if (!ipaddr.IPv4.isValidFourPartDecimal(node.underlayIP))
    fail(`underlay IP ${node.underlayIP} is not IPv4`);
  let cidr: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    cidr = ipaddr.parseCIDR(node.podCIDR);
  } catch (err) {
    return fail(`pod CIDR ${node.podCIDR} is not a CIDR`);
  }
  if (cidr[0].kind() !== 'ipv4') fail(`pod CIDR ${node.podCIDR} is not IPv4`);
  const network = ipaddr.IPv4.networkAddressFromCIDR(node.podCIDR).toString();
  return { ...node, podCIDR: `${network}/${cidr[1]}` };
}
