// Rules -> entries for one (endpoint, direction, peer), with named ports resolved. Without named
// ports the result depends only on the rules, so peers and endpoints sharing a rule set share
// one computation (rule objects are immutable and get unique ids).
import { ANY_PEER, type Direction, type PolicyEntry } from './entry.ts';
import type { NamedPortIndex } from './named-ports.ts';
import { contributions, peerEntries, type Contribution } from './resolve.ts';
import type { NamedPort, PolicyRule } from './types.ts';

const MEMO_LIMIT = 50_000;

export function hasNamedPorts(rules: readonly PolicyRule[]): boolean {
  return rules.some((r) => r.ports.some((p) => p.kind === 'named'));
}

export class PeerEntryComputer {
  private readonly memo = new Map<string, PolicyEntry[]>();
  private readonly ruleIds = new WeakMap<PolicyRule, number>();
  private nextRuleId = 1;

  constructor(private readonly namedPorts: NamedPortIndex) {}

  /** `peer` 'all' = a wildcard or CIDR peer: egress named ports resolve over every known pod. */
  contributions(
    direction: Direction,
    rules: readonly PolicyRule[],
    peer: number | 'all',
    ownPorts: readonly NamedPort[],
  ): Contribution[] {
    const out: Contribution[] = [];
    const source =
      direction === 'ingress'
        ? (name: string) => ownPorts.filter((p) => p.name === name)
        : (name: string) => this.namedPorts.lookup(peer, name);
    for (const r of rules) contributions(r, source, out);
    return out;
  }

  /** `scope`: whose egress named ports apply; identities resolve their own, other peers every pod's. */
  entries(
    direction: Direction,
    rules: readonly PolicyRule[],
    peer: number,
    ownPorts: readonly NamedPort[],
    scope: number | 'all' = peer === ANY_PEER ? 'all' : peer,
  ): PolicyEntry[] {
    if (rules.length === 0) return [];
    if (hasNamedPorts(rules))
      return peerEntries(direction, peer, this.contributions(direction, rules, scope, ownPorts));
    const key = direction + rules.map((r) => this.ruleId(r)).join(',');
    let template = this.memo.get(key);
    if (!template) {
      if (this.memo.size >= MEMO_LIMIT) this.memo.clear();
      template = peerEntries(
        direction,
        ANY_PEER,
        this.contributions(direction, rules, peer, ownPorts),
      );
      this.memo.set(key, template);
    }
    return template.map((e) => ({ ...e, peer }));
  }

  private ruleId(r: PolicyRule): number {
    let id = this.ruleIds.get(r);
    if (id === undefined) this.ruleIds.set(r, (id = this.nextRuleId++));
    return id;
  }
}
