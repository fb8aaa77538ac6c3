// Where the node table's side effects besides peers go: tunnel routes and strict-mode ranges.
// `prune: false` (before the first full table) only adds: a restarting agent whose mesh sync is
// slow must not withdraw the routes and strict ranges of remote nodes it has not heard of yet.
import { setMirror } from './mirror.ts';
import { applyTunnelRoutes, ownedRoutes, type TunnelRoute } from './routes.ts';
import type { StrictFilter } from './strict.ts';

export interface Steering {
  apply(
    routes: TunnelRoute[],
    localPodCIDRs: string[],
    meshPodCIDRs: string[],
    prune: boolean,
  ): Promise<void>;
  /** replaces just these routes (a rotation moving one peer's prefixes), removes nothing */
  reroute(routes: TunnelRoute[]): Promise<void>;
  /** packets to `prefixes` leaving `from` are copied into `to` too (exactly these prefixes) */
  mirror(from: string, to: string, prefixes: string[]): Promise<void>;
  /** our routes through `dev` as installed (none when routes are not managed) */
  routedVia(dev: string): Promise<string[]>;
}

/** The node's kernel: routes (proto 188) in its namespace, ranges in the strict filter's map. */
export function kernelSteering(o: {
  netns?: string;
  manageRoutes: boolean;
  strict: StrictFilter | undefined;
}): Steering {
  return {
    async apply(routes, local, mesh, prune) {
      if (o.manageRoutes) await applyTunnelRoutes(o.netns, routes, { prune });
      if (!o.strict) return;
      const kept = prune ? [] : [...o.strict.ranges().keys()];
      o.strict.setRanges(local, [...kept, ...mesh]);
    },
    async reroute(routes) {
      if (o.manageRoutes) await applyTunnelRoutes(o.netns, routes, { prune: false });
    },
    async mirror(from, to, prefixes) {
      if (o.manageRoutes) await setMirror(o.netns, from, to, prefixes);
    },
    async routedVia(dev) {
      return o.manageRoutes ? ownedRoutes(o.netns, dev) : [];
    },
  };
}

/** In memory, for unit tests of the agent's control logic. */
export class FakeSteering implements Steering {
  readonly routes = new Map<string, string>();
  readonly mesh = new Set<string>();
  /** `from` device -> mirrored prefixes */
  readonly mirrors = new Map<string, string[]>();
  passes = 0;

  async reroute(routes: TunnelRoute[]) {
    for (const r of routes) this.routes.set(r.dst, r.dev);
  }

  async mirror(from: string, _to: string, prefixes: string[]) {
    this.mirrors.set(from, [...prefixes].sort());
  }

  async routedVia(dev: string) {
    return [...this.routes].filter(([, d]) => d === dev).map(([dst]) => dst);
  }

  async apply(routes: TunnelRoute[], _local: string[], mesh: string[], prune: boolean) {
    this.passes++;
    if (prune) this.routes.clear();
    for (const r of routes) this.routes.set(r.dst, r.dev);
    if (prune) this.mesh.clear();
    for (const c of mesh) this.mesh.add(c);
  }
}
