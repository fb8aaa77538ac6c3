// Policies from the API into the engine. Each object is parsed; a valid one replaces what the
// engine held for its key, an invalid one is reported (agent log, `agent status`) and leaves the
// last good version enforced — bad input never loosens or breaks the node. A deleted object
// takes its last good version out of the engine.
import type { KubeObject } from '../k8s/types.ts';
import type { EndpointDelta, PolicyEngine } from '../policy/engine.ts';
import { parseCiliumPolicy } from '../policy/parse-cilium.ts';
import { parseNetworkPolicy } from '../policy/parse-k8s.ts';
import type { PolicyKind } from '../policy/types.ts';
import type { InvalidPolicy } from './types.ts';

export type { InvalidPolicy } from './types.ts';

interface Held {
  /** engine keys of the last good version (a CNP with `specs` may yield several) */
  engineKeys: string[];
  resourceVersion: string;
}

export class PolicySources {
  private readonly held = new Map<string, Held>();
  private readonly invalid = new Map<string, InvalidPolicy>();

  constructor(
    private readonly engine: PolicyEngine,
    private readonly onDeltas: (deltas: EndpointDelta[]) => void,
    private readonly log: (msg: string, fields: Record<string, unknown>) => void,
  ) {}

  /** Level-triggered handler of one policy object (undefined: deleted). */
  apply(kind: PolicyKind, storeKey: string, obj: KubeObject | undefined): void {
    const key = `${kind}/${storeKey}`;
    if (!obj) {
      this.invalid.delete(key);
      this.replace(key, undefined);
      return;
    }
    const rv = obj.metadata.resourceVersion ?? '';
    const parsed =
      kind === 'NetworkPolicy'
        ? mapOk(parseNetworkPolicy(obj, this.engine.cluster), (p) => [p])
        : parseCiliumPolicy(obj, kind, this.engine.cluster);
    if (!parsed.ok) {
      const entry: InvalidPolicy = {
        key,
        resourceVersion: rv,
        reason: parsed.error.message,
        lastGoodEnforced: this.held.has(key),
      };
      if (this.invalid.get(key)?.resourceVersion !== rv)
        this.log('policy rejected: the last good version stays enforced', { ...entry });
      this.invalid.set(key, entry);
      return;
    }
    this.invalid.delete(key);
    this.replace(key, { policies: parsed.value, resourceVersion: rv });
  }

  invalidPolicies(): InvalidPolicy[] {
    return [...this.invalid.values()].sort((a, b) => a.key.localeCompare(b.key));
  }

  /** Object key -> resourceVersion of every policy object handled (valid or not). */
  observed(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [k, h] of this.held) out.set(k, h.resourceVersion);
    for (const [k, i] of this.invalid) out.set(k, i.resourceVersion);
    return out;
  }

  enforcedCount(): number {
    return this.held.size;
  }

  private replace(
    key: string,
    next:
      | { policies: Parameters<PolicyEngine['upsertPolicy']>[0][]; resourceVersion: string }
      | undefined,
  ): void {
    const before = this.held.get(key);
    const keep = new Set(next?.policies.map((p) => p.key) ?? []);
    const deltas: EndpointDelta[] = [];
    for (const p of next?.policies ?? []) deltas.push(...this.engine.upsertPolicy(p));
    for (const k of before?.engineKeys ?? [])
      if (!keep.has(k)) deltas.push(...this.engine.deletePolicy(k));
    if (next) this.held.set(key, { engineKeys: [...keep], resourceVersion: next.resourceVersion });
    else this.held.delete(key);
    this.onDeltas(deltas);
  }
}

function mapOk<T, U, E>(
  r: { ok: true; value: T } | { ok: false; error: E },
  f: (v: T) => U,
): { ok: true; value: U } | { ok: false; error: E } {
  return r.ok ? { ok: true, value: f(r.value) } : r;
}
