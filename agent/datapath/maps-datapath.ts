// The part of a Datapath that is only map reads and writes, shared by the kernel datapath and
// the in-memory fake: endpoint removal, whole-policy writes and read-back convergence checks.
import type { EndpointPolicy } from '../policy/entry.ts';
import type { CounterMap } from './counter-map.ts';
import type { CtMap } from './ct-map.ts';
import type { EndpointMap, EndpointValue } from './endpoint-map.ts';
import { EndpointReadBatch, pushTo } from './read-batch.ts';
import type { FlowEvent } from './events.ts';
import type { IpcacheMap } from './ipcache-map.ts';
import type { LbMaps } from './lb-maps.ts';
import type { PolicyMap } from './policy-map.ts';
import type { PrefixMap } from './prefix-map.ts';
import type { StatsMap } from './stats-map.ts';
import type { AttachResult, Datapath } from './types.ts';

export interface DatapathMapSet {
  ipcache: IpcacheMap;
  endpoints: EndpointMap;
  policy: PolicyMap;
  prefixes: PrefixMap;
  ct: CtMap;
  counters: CounterMap;
  stats: StatsMap;
  lb: LbMaps;
}

export abstract class MapsDatapath implements Datapath {
  readonly ipcache: IpcacheMap;
  readonly endpoints: EndpointMap;
  readonly policy: PolicyMap;
  readonly prefixes: PrefixMap;
  readonly ct: CtMap;
  readonly counters: CounterMap;
  readonly stats: StatsMap;
  readonly lb: LbMaps;
  /** endpoint rows by endpoint id, for read-backs inside batchReadBack */
  private readonly rows = new EndpointReadBatch<EndpointValue>(() => {
    const out = new Map<number, EndpointValue[]>();
    for (const v of this.endpoints.values()) pushTo(out, v.endpointId, v);
    return out;
  });

  constructor(maps: DatapathMapSet) {
    this.ipcache = maps.ipcache;
    this.endpoints = maps.endpoints;
    this.policy = maps.policy;
    this.prefixes = maps.prefixes;
    this.ct = maps.ct;
    this.counters = maps.counters;
    this.stats = maps.stats;
    this.lb = maps.lb;
  }

  abstract mapIds(): Record<string, number>;
  abstract programIds(): { fromPod: number; toPod: number };
  abstract attachEndpoint(opts: { ifindex: number }): AttachResult;
  abstract detachEndpoint(opts: { ifindex: number }): boolean;
  abstract attached(opts: { ifindex: number }): AttachResult;
  abstract subscribeEvents(
    cb: (event: FlowEvent) => void,
    opts?: { keepAlive?: boolean },
  ): () => void;
  abstract drainEvents(): void;
  abstract close(): void;

  removeEndpoint(endpointId: number): void {
    this.rows.invalidate();
    const rows = [...this.endpoints.entries()].filter(([, v]) => v.endpointId === endpointId);
    for (const ifindex of new Set(rows.map(([, v]) => v.ifindex))) this.detachEndpoint({ ifindex });
    this.endpoints.deleteMany(rows.map(([ip]) => ip));
    this.policy.replace(endpointId, []);
    this.prefixes.replace(endpointId, []);
    this.ct.flushEndpoint(endpointId);
    this.counters.delete(endpointId);
  }

  applyEndpointPolicy(endpointId: number, policy: EndpointPolicy): void {
    this.rows.invalidate();
    const mine = [...this.endpoints.entries()].filter(([, v]) => v.endpointId === endpointId);
    const setFlags = (): void => {
      for (const [ip, v] of mine)
        this.endpoints.set(ip, {
          ...v,
          ingressEnforced: policy.ingressEnforced,
          egressEnforced: policy.egressEnforced,
        });
    };
    const loosening = mine.some(
      ([, v]) =>
        (v.ingressEnforced && !policy.ingressEnforced) ||
        (v.egressEnforced && !policy.egressEnforced),
    );
    if (loosening) setFlags();
    this.prefixes.replace(endpointId, policy.prefixes);
    this.policy.replace(endpointId, policy.entries);
    if (!loosening) setFlags();
    this.rows.invalidate();
  }

  /** Runs `fn` (read-backs of many endpoints) with one walk of the endpoint, policy and prefix maps. */
  batchReadBack<T>(fn: () => T): T {
    return this.rows.run(() => this.policy.batchReads(() => this.prefixes.batchReads(fn)));
  }

  endpointPolicyConverged(endpointId: number, policy: EndpointPolicy): boolean {
    const rows =
      this.rows.read(endpointId) ??
      [...this.endpoints.values()].filter((v) => v.endpointId === endpointId);
    const flagsOk = rows.every(
      (v) =>
        v.ingressEnforced === policy.ingressEnforced && v.egressEnforced === policy.egressEnforced,
    );
    const p = this.policy.delta(endpointId, policy.entries);
    const x = this.prefixes.delta(endpointId, policy.prefixes);
    return flagsOk && p.add.length + p.remove.length + x.add.length + x.remove.length === 0;
  }
}
