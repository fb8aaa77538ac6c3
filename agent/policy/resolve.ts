// From the rules that apply to one endpoint to the entries the datapath holds: named ports
// resolved, deny resolved against allow per (direction, peer), CIDR rules flattened into prefix
// classes whose longest match gives the right rule set.
import {
  ANY_PEER,
  PREFIX_CLASS_BASE,
  Protocol,
  type Direction,
  type PolicyEntry,
  type PrefixEntry,
  type ProtocolNumber,
} from './entry.ts';
import {
  CONCRETE_PROTOCOLS,
  cidrContains,
  normalize,
  subtract,
  toPortPrefixes,
  type Interval,
} from './ports.ts';
import type { NamedPort, PolicyRule, PortSpec, RuleRef } from './types.ts';

/** One rule's effect on one peer after named-port resolution. */
export interface Contribution {
  protocol: ProtocolNumber;
  lo: number;
  hi: number;
  deny: boolean;
  ref: RuleRef;
}

/** Named ports a rule resolves against: the endpoint's own (ingress) or the peer's (egress). */
export type NamedPortSource = (name: string) => readonly NamedPort[];

export function contributions(
  rule: PolicyRule,
  namedPorts: NamedPortSource,
  out: Contribution[],
): void {
  const { deny, ref } = rule;
  if (rule.ports.length === 0) {
    out.push({ protocol: Protocol.ANY, lo: 0, hi: 65535, deny, ref });
    return;
  }
  for (const p of rule.ports) pushPort(p, namedPorts, deny, ref, out);
}

function pushPort(
  p: PortSpec,
  namedPorts: NamedPortSource,
  deny: boolean,
  ref: RuleRef,
  out: Contribution[],
): void {
  if (p.kind === 'range') {
    out.push({ protocol: p.protocol, lo: p.from, hi: p.to, deny, ref });
    return;
  }
  for (const np of namedPorts(p.name)) {
    if (p.protocol === Protocol.ANY || p.protocol === np.protocol) {
      out.push({ protocol: np.protocol, lo: np.port, hi: np.port, deny, ref });
    }
  }
}

const isAll = (c: Contribution) => c.protocol === Protocol.ANY && c.lo === 0 && c.hi === 65535;

/**
 * Entries for one (direction, peer). Within the peer the entries are disjoint per protocol, and
 * the only wildcard-protocol entry is an allow-all or deny-all, so LPM gives deny-over-allow.
 */
export function peerEntries(
  direction: Direction,
  peer: number,
  contribs: readonly Contribution[],
): PolicyEntry[] {
  if (contribs.length === 0) return [];
  const entry = (
    protocol: ProtocolNumber,
    port: number,
    portPrefixLen: number,
    deny: boolean,
  ): PolicyEntry => ({
    direction,
    peer,
    protocol,
    port,
    portPrefixLen,
    deny,
  });
  if (contribs.some((c) => c.deny && isAll(c))) return [entry(Protocol.ANY, 0, 0, true)];
  const allowAll = contribs.some((c) => !c.deny && isAll(c));
  const out: PolicyEntry[] = allowAll ? [entry(Protocol.ANY, 0, 0, false)] : [];
  for (const proto of CONCRETE_PROTOCOLS) {
    const of = (deny: boolean): Interval[] =>
      normalize(
        contribs
          .filter((c) => c.deny === deny && (c.protocol === proto || c.protocol === Protocol.ANY))
          .map((c) => ({ lo: c.lo, hi: c.hi })),
      );
    const denied = of(true);
    for (const iv of denied)
      for (const b of toPortPrefixes(iv)) out.push(entry(proto, b.port, b.prefixLen, true));
    if (allowAll) continue; // the ANY entry already allows what is not denied
    for (const iv of subtract(of(false), denied)) {
      for (const b of toPortPrefixes(iv)) out.push(entry(proto, b.port, b.prefixLen, false));
    }
  }
  return out;
}

/** A CIDR rule of one direction: the rule and one of its CIDR peers. */
export interface CidrRule {
  rule: PolicyRule;
  cidr: string;
  except: readonly string[];
}

export interface PrefixClass {
  classId: number;
  rules: CidrRule[];
}

/**
 * Flattens CIDR rules into prefix classes: every cidr and except becomes a prefix; the class of a
 * prefix is the set of rules covering it (inside the cidr, outside every except). For an address
 * the longest matching prefix then yields exactly the rules covering that address.
 */
export function flattenCidrs(
  direction: Direction,
  rules: readonly CidrRule[],
): { prefixes: PrefixEntry[]; classes: PrefixClass[] } {
  const all = new Set<string>();
  for (const r of rules) {
    all.add(r.cidr);
    r.except.forEach((e) => all.add(e));
  }
  const sorted = [...all].sort(comparePrefix);
  const bySignature = new Map<string, PrefixClass>();
  const base = PREFIX_CLASS_BASE + (direction === 'egress' ? 1 << 20 : 0);
  const prefixes: PrefixEntry[] = [];
  for (const p of sorted) {
    const covering: number[] = [];
    rules.forEach((r, i) => {
      if (cidrContains(r.cidr, p) && !r.except.some((e) => cidrContains(e, p))) covering.push(i);
    });
    const sig = covering.join(',');
    let cls = bySignature.get(sig);
    if (!cls) {
      cls = { classId: base + bySignature.size, rules: covering.map((i) => rules[i]!) };
      bySignature.set(sig, cls);
    }
    prefixes.push({ direction, cidr: p, classId: cls.classId });
  }
  return { prefixes, classes: [...bySignature.values()] };
}

function comparePrefix(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function entryKey(e: PolicyEntry): string {
  return `${e.direction}|${e.peer}|${e.protocol}|${e.port}/${e.portPrefixLen}|${e.deny ? 'D' : 'A'}`;
}

export function prefixKey(p: PrefixEntry): string {
  return `${p.direction}|${p.cidr}|${p.classId}`;
}

export { ANY_PEER };
