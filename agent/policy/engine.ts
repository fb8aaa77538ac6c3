// The policy engine: policies + selector cache + local endpoints -> per-endpoint datapath
// entries, maintained incrementally and emitted as deltas. Pure: no I/O, no clocks.
import { reservedIdentities } from '../identity/labels.ts';
import type { SecurityLabels } from '../identity/types.ts';
import { ANY_PEER, type Direction, type EndpointPolicy, type PolicyEntry } from './entry.ts';
import {
  allPrefixes,
  DIRECTIONS,
  isEmpty,
  makeDelta,
  missingFrom,
  newState,
  type DirState,
  type EndpointDelta,
  type EndpointState,
  type LocalEndpoint,
} from './endpoint-state.ts';
import { PolicyError } from './errors.ts';
import { NamedPortIndex } from './named-ports.ts';
import { hasNamedPorts, PeerEntryComputer } from './peer-entries.ts';
import { entryKey, flattenCidrs, prefixKey, type CidrRule, type Contribution } from './resolve.ts';
import { SelectorCache } from './selector-cache.ts';
import { matches } from './selector.ts';
import type { NamedPort, ParsedPolicy, PolicyRule } from './types.ts';

export type { EndpointDelta, LocalEndpoint } from './endpoint-state.ts';

export class PolicyEngine {
  readonly cache = new SelectorCache();
  private readonly policies = new Map<string, ParsedPolicy>();
  private readonly endpoints = new Map<string, EndpointState>();
  /** selector key -> endpoints whose rules use it */
  private readonly users = new Map<string, Set<string>>();
  private readonly namedPorts = new NamedPortIndex();
  private readonly computer = new PeerEntryComputer(this.namedPorts);

  constructor(readonly cluster: string) {
    for (const r of reservedIdentities()) this.cache.upsertIdentity(r.id, r.labels);
  }

  // ---- inputs ------------------------------------------------------------------------------

  upsertIdentity(id: number, labels: SecurityLabels): EndpointDelta[] {
    return this.refreshPeers(this.usersOf(this.cache.upsertIdentity(id, labels)), [id], DIRECTIONS);
  }

  removeIdentity(id: number): EndpointDelta[] {
    return this.refreshPeers(this.usersOf(this.cache.removeIdentity(id)), [id], DIRECTIONS);
  }

  upsertPolicy(policy: ParsedPolicy): EndpointDelta[] {
    const old = this.policies.get(policy.key);
    this.takeSelectors(policy);
    if (old) this.releaseSelectors(old);
    this.policies.set(policy.key, policy);
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
    const state = prev ?? newState(ep, labels);
    state.ep = ep;
    state.labels = labels;
    this.endpoints.set(ep.name, state);
    const d = this.recompute(state);
    return prev === undefined || d
      ? [d ?? makeDelta(state, { add: [], remove: [], addPrefixes: [], removePrefixes: [] })]
      : [];
  }

  deleteEndpoint(name: string): EndpointDelta[] {
    const state = this.endpoints.get(name);
    if (!state) return [];
    this.setUses(state, new Set());
    this.endpoints.delete(name);
    const d = makeDelta(state, {
      add: [],
      remove: [...state.entries.values()],
      addPrefixes: [],
      removePrefixes: [...allPrefixes(state)],
    });
    return [{ ...d, ingressEnforced: false, egressEnforced: false }];
  }

  /** Named ports of a pod anywhere in the mesh (egress named ports resolve against these). */
  setPodNamedPorts(
    pod: string,
    identity: number,
    ports: readonly NamedPort[] | undefined,
  ): EndpointDelta[] {
    const changed = this.namedPorts.set(pod, identity, ports);
    if (changed.length === 0) return [];
    const out: EndpointDelta[] = [];
    const peerOnly = new Set<string>();
    for (const s of this.endpoints.values()) {
      const named = s.dirs.egress.rules.filter((r) => hasNamedPorts([r]));
      if (named.length === 0) continue;
      // wildcard and CIDR peers resolve over every pod: rebuild; identity peers: refresh those peers
      if (named.some((r) => r.peers.some((p) => p.kind !== 'selector'))) {
        const d = this.recompute(s);
        if (d) out.push(d);
      } else peerOnly.add(s.ep.name);
    }
    return [...out, ...this.refreshPeers(peerOnly, changed, ['egress'])];
  }

  // ---- outputs -----------------------------------------------------------------------------

  endpointNames(): string[] {
    return [...this.endpoints.keys()];
  }

  policyOf(name: string): EndpointPolicy {
    return snapshot(this.mustGet(name));
  }

  /** Policies selecting the endpoint, by key. */
  policiesOf(name: string): string[] {
    return [...this.mustGet(name).policies];
  }

  /** The rule contributions behind the entries for one peer: the "why" of a decision. */
  contributionsFor(name: string, direction: Direction, peer: number): Contribution[] {
    const s = this.mustGet(name);
    const dir = s.dirs[direction];
    const cidrRules = dir.classes.get(peer);
    if (cidrRules)
      return this.computer.contributions(
        direction,
        cidrRules.map((c) => c.rule),
        'all',
        s.ep.namedPorts,
      );
    return this.computer.contributions(
      direction,
      this.rulesForPeer(dir, peer),
      peer === ANY_PEER ? 'all' : peer,
      s.ep.namedPorts,
    );
  }

  /** The endpoint computed from scratch, for checks against the incremental state. */
  fullRecompute(name: string): EndpointPolicy {
    const shadow = newState(this.mustGet(name).ep, this.mustGet(name).labels);
    this.build(shadow, false);
    return snapshot(shadow);
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

  private usersOf(selectorKeys: string[]): Set<string> {
    const names = new Set<string>();
    for (const k of selectorKeys) this.users.get(k)?.forEach((n) => names.add(n));
    return names;
  }

  private recomputeWhere(pred: (s: EndpointState) => boolean): EndpointDelta[] {
    const out: EndpointDelta[] = [];
    for (const s of this.endpoints.values()) {
      if (!pred(s)) continue;
      const d = this.recompute(s);
      if (d) out.push(d);
    }
    return out;
  }

  /** Rebuilds one endpoint; returns what changed, or undefined when nothing did. */
  private recompute(s: EndpointState): EndpointDelta | undefined {
    const before = s.entries;
    const beforePrefixes = new Map([...allPrefixes(s)].map((p) => [prefixKey(p), p]));
    const wasEnforced = `${s.dirs.ingress.enforced}/${s.dirs.egress.enforced}`;
    const fresh = newState(s.ep, s.labels);
    s.entries = fresh.entries;
    s.dirs = fresh.dirs;
    this.build(s, true);
    const afterPrefixes = new Map([...allPrefixes(s)].map((p) => [prefixKey(p), p]));
    const d = makeDelta(s, {
      add: missingFrom(s.entries, before),
      remove: missingFrom(before, s.entries),
      addPrefixes: missingFrom(afterPrefixes, beforePrefixes),
      removePrefixes: missingFrom(beforePrefixes, afterPrefixes),
    });
    const enforcementChanged =
      wasEnforced !== `${s.dirs.ingress.enforced}/${s.dirs.egress.enforced}`;
    return enforcementChanged || !isEmpty(d) ? d : undefined;
  }

  /** Computes every entry and prefix of an endpoint; `track` registers its selector uses. */
  private build(s: EndpointState, track: boolean): void {
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
        this.store(
          s,
          direction,
          peer,
          this.computer.entries(direction, rules, peer, s.ep.namedPorts),
        );
      const flat = flattenCidrs(direction, cidrRules);
      for (const cls of flat.classes) {
        dir.classes.set(cls.classId, cls.rules);
        // a class is not an identity: egress named ports resolve over every pod
        this.store(
          s,
          direction,
          cls.classId,
          this.computer.entries(
            direction,
            cls.rules.map((c) => c.rule),
            cls.classId,
            s.ep.namedPorts,
            'all',
          ),
        );
      }
      for (const p of flat.prefixes) dir.prefixes.set(prefixKey(p), p);
    }
    if (track) this.setUses(s, used);
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

  private setUses(s: EndpointState, used: Set<string>): void {
    for (const k of s.selectors) {
      if (used.has(k)) continue;
      const set = this.users.get(k);
      if (set?.delete(s.ep.name) && set.size === 0) this.users.delete(k);
    }
    for (const k of used) {
      let set = this.users.get(k);
      if (!set) this.users.set(k, (set = new Set()));
      set.add(s.ep.name);
    }
    s.selectors = used;
  }

  /** Recomputes only the entries of the given peers, for the given endpoints and directions. */
  private refreshPeers(
    names: Iterable<string>,
    peers: readonly number[],
    directions: readonly Direction[],
  ): EndpointDelta[] {
    const out: EndpointDelta[] = [];
    for (const name of names) {
      const s = this.endpoints.get(name);
      if (!s) continue;
      const keysOf = () => {
        const m = new Map<string, PolicyEntry>();
        for (const d of directions)
          for (const p of peers)
            for (const k of s.dirs[d].byPeer.get(p) ?? []) m.set(k, s.entries.get(k)!);
        return m;
      };
      const before = keysOf();
      for (const d of directions) {
        for (const p of peers)
          this.store(
            s,
            d,
            p,
            this.computer.entries(d, this.rulesForPeer(s.dirs[d], p), p, s.ep.namedPorts),
          );
      }
      const after = keysOf();
      const delta = makeDelta(s, {
        add: missingFrom(after, before),
        remove: missingFrom(before, after),
        addPrefixes: [],
        removePrefixes: [],
      });
      if (!isEmpty(delta)) out.push(delta);
    }
    return out;
  }
}

function snapshot(s: EndpointState): EndpointPolicy {
  return {
    ingressEnforced: s.dirs.ingress.enforced,
    egressEnforced: s.dirs.egress.enforced,
    entries: [...s.entries.values()],
    prefixes: [...allPrefixes(s)],
  };
}
