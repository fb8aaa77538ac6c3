// The policy engine: policies + selector cache + local endpoints -> per-endpoint datapath
// entries, maintained incrementally and emitted as deltas. Pure: no I/O, no clocks.
import { reservedIdentities } from '../identity/labels.ts';
import type { SecurityLabels } from '../identity/types.ts';
import {
  ANY_PEER,
  type Direction,
  type EndpointPolicy,
  type PolicyEntry,
  type PrefixEntry,
} from './entry.ts';
import { PolicyError } from './errors.ts';
import {
  contributions,
  entryKey,
  flattenCidrs,
  peerEntries,
  prefixKey,
  type CidrRule,
  type Contribution,
  type NamedPortSource,
} from './resolve.ts';
import { SelectorCache } from './selector-cache.ts';
import { matches } from './selector.ts';
import type { NamedPort, ParsedPolicy, PolicyRule } from './types.ts';

export interface LocalEndpoint {
  /** stable name, e.g. `x/a` */
  name: string;
  identity: number;
  namedPorts: readonly NamedPort[];
}

/** What changed for one endpoint; the datapath reconciler writes exactly this. */
export interface EndpointDelta {
  endpoint: string;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  add: PolicyEntry[];
  remove: PolicyEntry[];
  addPrefixes: PrefixEntry[];
  removePrefixes: PrefixEntry[];
}

interface DirState {
  enforced: boolean;
  rules: PolicyRule[];
  /** peer -> entry keys currently emitted for it */
  byPeer: Map<number, string[]>;
  classes: Map<number, CidrRule[]>;
  prefixes: Map<string, PrefixEntry>;
}

interface EndpointState {
  ep: LocalEndpoint;
  labels: SecurityLabels;
  policies: string[];
  selectors: Set<string>;
  entries: Map<string, PolicyEntry>;
  dirs: Record<Direction, DirState>;
}

const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];
const MEMO_LIMIT = 50_000;

export class PolicyEngine {
  readonly cache = new SelectorCache();
  private readonly policies = new Map<string, ParsedPolicy>();
  private readonly endpoints = new Map<string, EndpointState>();
  /** selector key -> endpoints whose rules use it */
  private readonly users = new Map<string, Set<string>>();
  /** identity -> pod name -> named ports (what the ipcache knows about every pod) */
  private readonly peerPorts = new Map<number, Map<string, readonly NamedPort[]>>();
  private readonly memo = new Map<string, PolicyEntry[]>();
  private readonly ruleIds = new WeakMap<PolicyRule, number>();
  private nextRuleId = 1;

  constructor(readonly cluster: string) {
    for (const r of reservedIdentities()) this.cache.upsertIdentity(r.id, r.labels);
  }

  // ---- inputs ------------------------------------------------------------------------------

  upsertIdentity(id: number, labels: SecurityLabels): EndpointDelta[] {
    const changed = this.cache.upsertIdentity(id, labels);
    return this.refreshPeer(id, changed);
  }

  removeIdentity(id: number): EndpointDelta[] {
    const changed = this.cache.removeIdentity(id);
    return this.refreshPeer(id, changed);
  }

  upsertPolicy(policy: ParsedPolicy): EndpointDelta[] {
    const old = this.policies.get(policy.key);
    if (old) this.releaseSelectors(old);
    this.policies.set(policy.key, policy);
    this.takeSelectors(policy);
    return this.recomputeWhere(
      (s) =>
        (old !== undefined && s.policies.includes(old.key)) || matches(policy.subject, s.labels),
    );
  }

  deletePolicy(key: string): EndpointDelta[] {
    const old = this.policies.get(key);
    if (!old) return [];
    this.policies.delete(key);
    this.releaseSelectors(old);
    return this.recomputeWhere((s) => s.policies.includes(key));
  }

  upsertEndpoint(ep: LocalEndpoint): EndpointDelta[] {
    const labels = this.cache.labelsOf(ep.identity);
    if (!labels) {
      throw new PolicyError(
        'POLICY_UNKNOWN_ENDPOINT',
        `endpoint ${ep.name} has identity ${ep.identity}, which the engine does not know: add the identity first`,
      );
    }
    const prev = this.endpoints.get(ep.name);
    const state: EndpointState = prev ?? {
      ep,
      labels,
      policies: [],
      selectors: new Set(),
      entries: new Map(),
      dirs: { ingress: emptyDir(), egress: emptyDir() },
    };
    state.ep = ep;
    state.labels = labels;
    this.endpoints.set(ep.name, state);
    return [this.recompute(state)].filter(nonEmpty(prev === undefined));
  }

  deleteEndpoint(name: string): EndpointDelta[] {
    const state = this.endpoints.get(name);
    if (!state) return [];
    this.setUses(state, new Set());
    this.endpoints.delete(name);
    return [
      delta(state, [], [...state.entries.values()], [], [...allPrefixes(state)], false, false),
    ];
  }

  /** Named ports of a pod anywhere in the mesh (egress named ports resolve against these). */
  setPodNamedPorts(
    pod: string,
    identity: number,
    ports: readonly NamedPort[] | undefined,
  ): EndpointDelta[] {
    for (const [id, pods] of this.peerPorts) {
      if (id !== identity && pods.delete(pod) && pods.size === 0) this.peerPorts.delete(id);
    }
    if (ports && ports.length > 0) {
      let pods = this.peerPorts.get(identity);
      if (!pods) this.peerPorts.set(identity, (pods = new Map()));
      pods.set(pod, ports);
    } else this.peerPorts.get(identity)?.delete(pod);
    // only endpoints with egress named-port rules can change
    return this.recomputeWhere((s) =>
      s.dirs.egress.rules.some((r) => r.ports.some((p) => p.kind === 'named')),
    );
  }

  // ---- outputs -----------------------------------------------------------------------------

  endpointNames(): string[] {
    return [...this.endpoints.keys()];
  }

  policyOf(name: string): EndpointPolicy {
    const s = this.mustGet(name);
    return {
      ingressEnforced: s.dirs.ingress.enforced,
      egressEnforced: s.dirs.egress.enforced,
      entries: [...s.entries.values()],
      prefixes: [...allPrefixes(s)],
    };
  }

  /** Policies selecting the endpoint, by key. */
  policiesOf(name: string): string[] {
    return [...this.mustGet(name).policies];
  }

  /** The contributions (rule, ports) behind entries for one peer: the "why" of a decision. */
  contributionsFor(name: string, direction: Direction, peer: number): Contribution[] {
    const s = this.mustGet(name);
    const dir = s.dirs[direction];
    const cidrRules = dir.classes.get(peer);
    if (cidrRules)
      return this.collect(
        s,
        direction,
        cidrRules.map((c) => c.rule),
        'all',
      );
    return this.collect(s, direction, this.rulesForPeer(dir, peer), peer);
  }

  /** Everything recomputed from scratch, for checks against the incremental state. */
  fullRecompute(name: string): EndpointPolicy {
    const s = this.mustGet(name);
    const shadow: EndpointState = {
      ...s,
      policies: [],
      selectors: new Set(),
      entries: new Map(),
      dirs: { ingress: emptyDir(), egress: emptyDir() },
    };
    this.build(shadow);
    return {
      ingressEnforced: shadow.dirs.ingress.enforced,
      egressEnforced: shadow.dirs.egress.enforced,
      entries: [...shadow.entries.values()],
      prefixes: [...allPrefixes(shadow)],
    };
  }

  // ---- internals ---------------------------------------------------------------------------

  private mustGet(name: string): EndpointState {
    const s = this.endpoints.get(name);
    if (!s)
      throw new PolicyError(
        'POLICY_UNKNOWN_ENDPOINT',
        `no local endpoint named ${name}: list endpoints with endpointNames()`,
      );
    return s;
  }

  private takeSelectors(p: ParsedPolicy): void {
    for (const r of p.rules)
      for (const peer of r.peers) if (peer.kind === 'selector') this.cache.add(peer.selector);
  }

  private releaseSelectors(p: ParsedPolicy): void {
    for (const r of p.rules)
      for (const peer of r.peers)
        if (peer.kind === 'selector') this.cache.release(peer.selector.key);
  }

  private recomputeWhere(pred: (s: EndpointState) => boolean): EndpointDelta[] {
    const out: EndpointDelta[] = [];
    for (const s of this.endpoints.values()) {
      if (!pred(s)) continue;
      const d = this.recompute(s);
      if (nonEmpty(false)(d)) out.push(d);
    }
    return out;
  }

  /** Rebuilds one endpoint and returns the difference to what it had. */
  private recompute(s: EndpointState): EndpointDelta {
    const before = s.entries;
    const beforePrefixes = new Map([...allPrefixes(s)].map((p) => [prefixKey(p), p]));
    const wasEnforced = [s.dirs.ingress.enforced, s.dirs.egress.enforced];
    s.entries = new Map();
    s.dirs = { ingress: emptyDir(), egress: emptyDir() };
    this.build(s);
    const afterPrefixes = new Map([...allPrefixes(s)].map((p) => [prefixKey(p), p]));
    const d = delta(
      s,
      diff(s.entries, before),
      diff(before, s.entries),
      diff(afterPrefixes, beforePrefixes),
      diff(beforePrefixes, afterPrefixes),
      s.dirs.ingress.enforced,
      s.dirs.egress.enforced,
    );
    if (wasEnforced[0] !== s.dirs.ingress.enforced || wasEnforced[1] !== s.dirs.egress.enforced)
      d.enforcementChanged = true;
    return d;
  }

  private build(s: EndpointState): void {
    const selecting = [...this.policies.values()]
      .filter((p) => matches(p.subject, s.labels))
      .sort((a, b) => (a.key < b.key ? -1 : 1));
    s.policies = selecting.map((p) => p.key);
    const used = new Set<string>();
    for (const direction of DIRECTIONS) {
      const dir = s.dirs[direction];
      dir.enforced = selecting.some((p) =>
        direction === 'ingress' ? p.ingressEnforced : p.egressEnforced,
      );
      dir.rules = selecting.flatMap((p) => p.rules.filter((r) => r.direction === direction));
      const rulesByPeer = new Map<number, PolicyRule[]>();
      const addRule = (peer: number, rule: PolicyRule) => {
        const list = rulesByPeer.get(peer);
        if (!list) rulesByPeer.set(peer, [rule]);
        else if (list[list.length - 1] !== rule) list.push(rule);
      };
      const cidrRules: CidrRule[] = [];
      for (const rule of dir.rules) {
        for (const peer of rule.peers) {
          if (peer.kind === 'any') addRule(ANY_PEER, rule);
          else if (peer.kind === 'cidr')
            cidrRules.push({ rule, cidr: peer.cidr, except: peer.except });
          else {
            used.add(peer.selector.key);
            for (const id of this.cache.selected(peer.selector.key)) addRule(id, rule);
          }
        }
      }
      for (const [peer, rules] of rulesByPeer)
        this.store(s, direction, peer, this.entriesFor(s, direction, rules, peer));
      const flat = flattenCidrs(direction, cidrRules);
      for (const cls of flat.classes) {
        dir.classes.set(cls.classId, cls.rules);
        const contribs = this.collect(
          s,
          direction,
          cls.rules.map((c) => c.rule),
          'all',
        );
        this.store(s, direction, cls.classId, peerEntries(direction, cls.classId, contribs));
      }
      for (const p of flat.prefixes) dir.prefixes.set(prefixKey(p), p);
    }
    this.setUses(s, used);
  }

  /** Rules of a direction that reach `peer` through an identity selector or a wildcard. */
  private rulesForPeer(dir: DirState, peer: number): PolicyRule[] {
    return dir.rules.filter((r) =>
      r.peers.some((p) =>
        p.kind === 'any'
          ? peer === ANY_PEER
          : p.kind === 'selector'
            ? peer !== ANY_PEER && this.cache.selected(p.selector.key).has(peer)
            : false,
      ),
    );
  }

  private emitPeer(s: EndpointState, direction: Direction, peer: number): void {
    const rules = this.rulesForPeer(s.dirs[direction], peer);
    this.store(s, direction, peer, this.entriesFor(s, direction, rules, peer));
  }

  /**
   * Entries of one peer. Without named ports they depend only on the rules, so peers and
   * endpoints sharing a rule set share one computation (rule objects are immutable; ids unique).
   */
  private entriesFor(
    s: EndpointState,
    direction: Direction,
    rules: readonly PolicyRule[],
    peer: number,
  ): PolicyEntry[] {
    if (rules.length === 0) return [];
    const named = rules.some((r) => r.ports.some((p) => p.kind === 'named'));
    if (named)
      return peerEntries(
        direction,
        peer,
        this.collect(s, direction, rules, peer === ANY_PEER ? 'all' : peer),
      );
    const key = direction + rules.map((r) => this.ruleId(r)).join(',');
    let template = this.memo.get(key);
    if (!template) {
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      template = peerEntries(direction, ANY_PEER, this.collect(s, direction, rules, peer));
      this.memo.set(key, template);
    }
    return template.map((e) => ({ ...e, peer }));
  }

  private ruleId(r: PolicyRule): number {
    let id = this.ruleIds.get(r);
    if (id === undefined) this.ruleIds.set(r, (id = this.nextRuleId++));
    return id;
  }

  private store(
    s: EndpointState,
    direction: Direction,
    peer: number,
    entries: PolicyEntry[],
  ): void {
    const dir = s.dirs[direction];
    for (const k of dir.byPeer.get(peer) ?? []) s.entries.delete(k);
    const keys = entries.map(entryKey);
    entries.forEach((e, i) => s.entries.set(keys[i]!, e));
    if (keys.length > 0) dir.byPeer.set(peer, keys);
    else dir.byPeer.delete(peer);
  }

  private collect(
    s: EndpointState,
    direction: Direction,
    rules: readonly PolicyRule[],
    peer: number | 'all',
  ): Contribution[] {
    const out: Contribution[] = [];
    const source = this.namedPortSource(s, direction, peer);
    for (const r of rules) contributions(r, source, out);
    return out;
  }

  /** Ingress: the endpoint's own port names. Egress: the destination's, over every pod known with that identity. */
  private namedPortSource(
    s: EndpointState,
    direction: Direction,
    peer: number | 'all',
  ): NamedPortSource {
    if (direction === 'ingress') return (name) => s.ep.namedPorts.filter((p) => p.name === name);
    const pods =
      peer === 'all'
        ? [...this.peerPorts.values()].flatMap((m) => [...m.values()])
        : [...(this.peerPorts.get(peer)?.values() ?? [])];
    return (name) => pods.flatMap((ports) => ports.filter((p) => p.name === name));
  }

  private setUses(s: EndpointState, used: Set<string>): void {
    for (const k of s.selectors) if (!used.has(k)) this.users.get(k)?.delete(s.ep.name);
    for (const k of used) {
      let set = this.users.get(k);
      if (!set) this.users.set(k, (set = new Set()));
      set.add(s.ep.name);
    }
    s.selectors = used;
  }

  /** An identity appeared or left: only entries for that peer change, only where a selector moved. */
  private refreshPeer(id: number, changedSelectors: string[]): EndpointDelta[] {
    const affected = new Set<string>();
    for (const k of changedSelectors) this.users.get(k)?.forEach((n) => affected.add(n));
    const out: EndpointDelta[] = [];
    for (const name of affected) {
      const s = this.endpoints.get(name);
      if (!s) continue;
      const before = new Map<string, PolicyEntry>();
      for (const direction of DIRECTIONS)
        for (const k of s.dirs[direction].byPeer.get(id) ?? []) before.set(k, s.entries.get(k)!);
      for (const direction of DIRECTIONS) this.emitPeer(s, direction, id);
      const after = new Map<string, PolicyEntry>();
      for (const direction of DIRECTIONS)
        for (const k of s.dirs[direction].byPeer.get(id) ?? []) after.set(k, s.entries.get(k)!);
      const d = delta(
        s,
        diff(after, before),
        diff(before, after),
        [],
        [],
        s.dirs.ingress.enforced,
        s.dirs.egress.enforced,
      );
      if (d.add.length + d.remove.length > 0) out.push(d);
    }
    return out;
  }
}

function emptyDir(): DirState {
  return { enforced: false, rules: [], byPeer: new Map(), classes: new Map(), prefixes: new Map() };
}

function* allPrefixes(s: EndpointState): Iterable<PrefixEntry> {
  for (const d of DIRECTIONS) yield* s.dirs[d].prefixes.values();
}

function diff<T>(a: Map<string, T>, b: Map<string, T>): T[] {
  const out: T[] = [];
  for (const [k, v] of a) if (!b.has(k)) out.push(v);
  return out;
}

type InternalDelta = EndpointDelta & { enforcementChanged?: boolean };

function delta(
  s: EndpointState,
  add: PolicyEntry[],
  remove: PolicyEntry[],
  addPrefixes: PrefixEntry[],
  removePrefixes: PrefixEntry[],
  ingressEnforced: boolean,
  egressEnforced: boolean,
): InternalDelta {
  return {
    endpoint: s.ep.name,
    ingressEnforced,
    egressEnforced,
    add,
    remove,
    addPrefixes,
    removePrefixes,
  };
}

function nonEmpty(always: boolean): (d: InternalDelta) => boolean {
  return (d) => {
    const keep =
      always ||
      d.enforcementChanged === true ||
      d.add.length + d.remove.length + d.addPrefixes.length + d.removePrefixes.length > 0;
    delete d.enforcementChanged;
    return keep;
  };
}
