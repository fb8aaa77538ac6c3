// Where the node table's side effects besides peers go: tunnel routes and strict-mode ranges.
// `prune: false` (before the first full table) only adds: a restarting agent whose mesh sync is
// slow must not withdraw the routes and strict ranges of remote nodes it has not heard of yet.
import { applyTunnelRoutes, type TunnelRoute } from './routes.ts';
import type { StrictFilter } from './strict.ts';

export interface Steering {
  apply(
    routes: TunnelRoute[],
    localPodCIDRs: string[],
    meshPodCIDRs: string[],
    prune: boolean,
  ): Promise<void>;
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
  };
}

/** In memory, for unit tests of the agent's control logic. */
export class FakeSteering implements Steering {
  readonly routes = new Map<string, string>();
  readonly mesh = new Set<string>();
  passes = 0;

  async apply(routes: TunnelRoute[], _local: string[], mesh: string[], prune: boolean) {
    this.passes++;
    if (prune) this.routes.clear();
    for (const r of routes) this.routes.set(r.dst, r.dev);
    if (prune) this.mesh.clear();
    for (const c of mesh) this.mesh.add(c);
  }
}
