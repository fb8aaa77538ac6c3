// Writes each local endpoint's policy (the engine's EndpointPolicy) into the BPF policy/prefix maps
// and the endpoint row's enforcement flags. Engine deltas trigger a write for the endpoints they
// name; a periodic full pass reads every endpoint's maps back and rewrites the ones that drifted.
// Writes are whole-policy replaces, which the datapath turns into map deltas (idempotent).
import type { Datapath } from '../datapath/types.ts';
import type { EndpointPolicy } from '../policy/entry.ts';
import type { EndpointDelta, PolicyEngine } from '../policy/engine.ts';

export type PolicyMaps = Pick<Datapath, 'applyEndpointPolicy' | 'endpointPolicyConverged'> & {
  /** one walk of the maps for many read-backs (MapsDatapath has it) */
  batchReadBack?: <T>(fn: () => T) => T;
};

export interface EndpointPolicyStatus {
  name: string;
  endpointId: number;
  /** bumped each time the desired policy of the endpoint changes */
  revision: number;
  converged: boolean;
  error?: string;
}

export interface FullPassReport {
  at: string;
  checked: number;
  repaired: number;
}

interface Bound {
  endpointId: number;
  revision: number;
  error?: string;
}

const UNENFORCED: EndpointPolicy = {
  ingressEnforced: false,
  egressEnforced: false,
  entries: [],
  prefixes: [],
};

export class EndpointPolicyReconciler {
  private readonly bound = new Map<string, Bound>();
  private timer: NodeJS.Timeout | undefined;
  private last: FullPassReport | undefined;

  constructor(
    private readonly engine: PolicyEngine,
    private readonly maps: PolicyMaps,
    private readonly opts: {
      intervalMs?: number;
      log?: (msg: string, fields: Record<string, unknown>) => void;
    } = {},
  ) {}

  start(): void {
    const interval = this.opts.intervalMs ?? 10_000;
    if (interval > 0 && !this.timer) {
      this.timer = setInterval(() => this.fullPass(), interval);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Starts enforcing the engine's policy of `name` on a datapath endpoint and writes it now. */
  bind(name: string, endpointId: number): void {
    const cur = this.bound.get(name);
    this.bound.set(name, { endpointId, revision: (cur?.revision ?? 0) + 1 });
    this.write(name);
  }

  /** Forgets an endpoint (its maps go with the datapath endpoint). Unknown names are fine. */
  unbind(name: string): void {
    this.bound.delete(name);
  }

  /** Applies engine deltas: each named endpoint gets its whole current policy written once. */
  applyDeltas(deltas: readonly EndpointDelta[]): void {
    for (const name of new Set(deltas.map((d) => d.endpoint))) {
      const b = this.bound.get(name);
      if (!b) continue;
      b.revision++;
      this.write(name);
    }
  }

  desired(name: string): EndpointPolicy {
    return this.engine.endpointNames().includes(name) ? this.engine.policyOf(name) : UNENFORCED;
  }

  /** Reads every bound endpoint's maps back; rewrites those that differ. */
  fullPass(): FullPassReport {
    const drifted = this.batch(() =>
      [...this.bound].filter(([name, b]) => !this.readBack(name, b)),
    );
    for (const [name, b] of drifted) {
      this.opts.log?.('policy maps drifted from the desired state: repairing', {
        endpoint: name,
        endpointId: b.endpointId,
      });
      this.write(name);
    }
    const repaired = drifted.length;
    this.last = { at: new Date().toISOString(), checked: this.bound.size, repaired };
    return this.last;
  }

  lastFullPass(): FullPassReport | undefined {
    return this.last;
  }

  /** Per endpoint: revision and whether the maps, read back now, hold its desired policy. */
  status(): EndpointPolicyStatus[] {
    return this.batch(() =>
      [...this.bound].map(([name, b]) => ({
        name,
        endpointId: b.endpointId,
        revision: b.revision,
        converged: this.readBack(name, b),
        ...(b.error && { error: b.error }),
      })),
    );
  }

  /** Read-backs of many endpoints with one walk of the maps when the datapath offers it. */
  private batch<T>(fn: () => T): T {
    return this.maps.batchReadBack ? this.maps.batchReadBack(fn) : fn();
  }

  private readBack(name: string, b: Bound): boolean {
    try {
      return this.maps.endpointPolicyConverged(b.endpointId, this.desired(name));
    } catch {
      return false;
    }
  }

  private write(name: string): void {
    const b = this.bound.get(name);
    if (!b) return;
    try {
      this.maps.applyEndpointPolicy(b.endpointId, this.desired(name));
      delete b.error;
    } catch (err) {
      // e.g. a full map: reported in status, retried by the next full pass
      b.error = err instanceof Error ? err.message : String(err);
      this.opts.log?.('policy write failed', { endpoint: name, error: b.error });
    }
  }
}
