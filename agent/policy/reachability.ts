// Reachability: for every ordered pair of distinct pods and every probe, run the endpoint entries
// the engine computed through the datapath lookup model (sender's egress, receiver's ingress),
// and explain each decision down to the policy rules behind it.
import { labelsToString } from '../identity/labels.ts';
import type { PolicyEngine } from './engine.ts';
import type { Direction, ProtocolNumber } from './entry.ts';
import { PolicyError } from './errors.ts';
import { PolicyLookup, type LookupKind, type Verdict } from './lookup.ts';
import { podKey, type PolicyMesh } from './mesh.ts';
import { PROTOCOL_NAMES, protocolName } from './ports.ts';
import type { Contribution } from './resolve.ts';
import type { RuleRef } from './types.ts';

export interface Probe {
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

export interface ProbeRow {
  from: string;
  to: string;
  port: number;
  protocol: string;
  allowed: boolean;
  reason: string;
}

export interface SideExplanation {
  endpoint: string;
  direction: Direction;
  enforced: boolean;
  allowed: boolean;
  policies: string[];
  note?: string;
  prefix?: string;
  matches: {
    lookup: LookupKind;
    peer: number;
    /** what the peer value stands for: identity labels, the prefix, or "any peer" */
    peerDescription: string;
    deny: boolean;
    entry: string;
    rules: RuleRef[];
  }[];
}

export interface Explanation extends ProbeRow {
  egress: SideExplanation;
  ingress: SideExplanation;
}

export function parseProbe(text: string): Probe {
  const m = /^(\d{1,5})\/(TCP|UDP|SCTP)$/i.exec(text.trim());
  const port = m ? Number(m[1]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new PolicyError(
      'POLICY_INPUT',
      `bad probe ${JSON.stringify(text)}: write PORT/PROTO, e.g. 80/TCP (protocols TCP, UDP, SCTP)`,
    );
  }
  return { port, protocol: m[2]!.toUpperCase() as Probe['protocol'] };
}

/** One row per ordered pair of distinct pods per probe, in a stable order. */
export function reachability(mesh: PolicyMesh, probes: readonly Probe[]): ProbeRow[] {
  const pods = mesh
    .allPods()
    .map((p) => podKey(p.spec))
    .sort();
  const lookups = new LookupCache(mesh);
  const rows: ProbeRow[] = [];
  for (const probe of probes) {
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        const e = explainWith(mesh, lookups, from, to, probe);
        rows.push({
          from: e.from,
          to: e.to,
          port: e.port,
          protocol: e.protocol,
          allowed: e.allowed,
          reason: e.reason,
        });
      }
    }
  }
  return rows;
}

export function explain(mesh: PolicyMesh, from: string, to: string, probe: Probe): Explanation {
  return explainWith(mesh, new LookupCache(mesh), from, to, probe);
}

class LookupCache {
  private readonly map = new Map<string, PolicyLookup>();
  constructor(private readonly mesh: PolicyMesh) {}
  get(pod: string, cluster: string): PolicyLookup {
    let l = this.map.get(pod);
    if (!l) this.map.set(pod, (l = new PolicyLookup(this.mesh.engine(cluster).policyOf(pod))));
    return l;
  }
}

function explainWith(
  mesh: PolicyMesh,
  lookups: LookupCache,
  from: string,
  to: string,
  probe: Probe,
): Explanation {
  const src = mesh.pod(from);
  const dst = mesh.pod(to);
  if (!src || !dst)
    throw new PolicyError(
      'POLICY_INPUT',
      `unknown pod ${!src ? from : to}: name pods as CLUSTER/NAMESPACE/NAME`,
    );
  const proto = PROTOCOL_NAMES[probe.protocol] as ProtocolNumber;
  // the ipcache maps a pod's IP to its identity; pods without an IP are still known by identity
  const peerIdentity = (p: typeof src) => p.identity;
  const egressV = lookups
    .get(from, src.spec.cluster)
    .decide('egress', peerIdentity(dst), dst.spec.ip, proto, probe.port);
  const ingressV = lookups
    .get(to, dst.spec.cluster)
    .decide('ingress', peerIdentity(src), src.spec.ip, proto, probe.port);
  const egress = side(mesh, src.spec.cluster, from, 'egress', egressV, proto, probe.port);
  const ingress = side(mesh, dst.spec.cluster, to, 'ingress', ingressV, proto, probe.port);
  const allowed = egressV.allowed && ingressV.allowed;
  return {
    from,
    to,
    port: probe.port,
    protocol: probe.protocol,
    allowed,
    reason: reasonOf(egress, ingress),
    egress,
    ingress,
  };
}

function side(
  mesh: PolicyMesh,
  cluster: string,
  pod: string,
  direction: Direction,
  v: Verdict,
  proto: number,
  port: number,
): SideExplanation {
  const engine = mesh.engine(cluster);
  const matches = v.matches.map((m) => ({
    lookup: m.kind,
    peer: m.entry.peer,
    peerDescription: describePeer(engine, m.kind, m.entry.peer, v.prefix?.cidr),
    deny: m.entry.deny,
    entry: `${protocolName(m.entry.protocol)} ${m.entry.port}/${m.entry.portPrefixLen}`,
    rules: rulesBehind(
      engine.contributionsFor(pod, direction, m.entry.peer),
      m.entry.deny,
      proto,
      port,
    ),
  }));
  return {
    endpoint: pod,
    direction,
    enforced: v.enforced,
    allowed: v.allowed,
    policies: engine.policiesOf(pod),
    note: v.note,
    prefix: v.prefix?.cidr,
    matches,
  };
}

function describePeer(
  engine: PolicyEngine,
  kind: LookupKind,
  peer: number,
  prefix: string | undefined,
): string {
  if (kind === 'any-peer') return 'any peer';
  if (kind === 'prefix') return `addresses in ${prefix ?? 'a prefix class'}`;
  const labels = engine.cache.labelsOf(peer);
  return labels ? `identity ${peer} (${labelsToString(labels)})` : `identity ${peer}`;
}

function rulesBehind(
  contribs: readonly Contribution[],
  deny: boolean,
  proto: number,
  port: number,
): RuleRef[] {
  const seen = new Map<string, RuleRef>();
  for (const c of contribs) {
    if (c.deny !== deny || (c.protocol !== 0 && c.protocol !== proto) || port < c.lo || port > c.hi)
      continue;
    seen.set(`${c.ref.policy} ${c.ref.path}`, c.ref);
  }
  return [...seen.values()];
}

const refText = (r: RuleRef) => `${r.policy} ${r.path}`;

function sideReason(s: SideExplanation): string {
  if (!s.enforced) return `${s.direction} of ${s.endpoint} not isolated`;
  if (s.note === 'own-node') return `${s.direction} from own node always allowed`;
  const decisive = s.matches.filter((m) => m.deny === !s.allowed);
  const rules = [...new Set(decisive.flatMap((m) => m.rules.map(refText)))];
  if (!s.allowed && decisive.length === 0)
    return `${s.direction} of ${s.endpoint}: no rule allows it (default deny; selected by ${s.policies.join(', ')})`;
  return `${s.direction} of ${s.endpoint} ${s.allowed ? 'allowed' : 'denied'} by ${rules.join(', ') || 'an entry without rules'}`;
}

function reasonOf(egress: SideExplanation, ingress: SideExplanation): string {
  if (!egress.allowed) return sideReason(egress);
  if (!ingress.allowed) return sideReason(ingress);
  return `${sideReason(egress)}; ${sideReason(ingress)}`;
}

/** Upstream-style truth table: rows from, columns to, one table per probe. */
export function formatTable(rows: readonly ProbeRow[]): string {
  const out: string[] = [];
  const probes = [...new Set(rows.map((r) => `${r.port}/${r.protocol}`))];
  for (const probe of probes) {
    const sel = rows.filter((r) => `${r.port}/${r.protocol}` === probe);
    const pods = [...new Set(sel.flatMap((r) => [r.from, r.to]))].sort();
    const cell = new Map(sel.map((r) => [`${r.from} ${r.to}`, r.allowed ? '.' : 'X']));
    const w = Math.max(...pods.map((p) => p.length), 4);
    out.push(`probe ${probe}  (. allowed, X denied; rows from, columns to)`);
    out.push([''.padEnd(w), ...pods.map((p, i) => String(i + 1).padStart(3))].join(' '));
    pods.forEach((from, i) => {
      const cells = pods.map((to) =>
        (from === to ? '-' : (cell.get(`${from} ${to}`) ?? '?')).padStart(3),
      );
      out.push([`${from.padEnd(w)}`, ...cells, `  ${i + 1}`].join(' '));
    });
    out.push('');
  }
  return out.join('\n');
}
