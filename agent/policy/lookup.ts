// A TypeScript model of the datapath's policy lookup exactly as entry.ts specifies it. The
// reachability analysis and the conformance suite decide every probe through this model, so they
// test the same entries the kernel enforces.
import ipaddr from 'ipaddr.js';
import { ReservedIdentity } from '../identity/types.ts';
import {
  ANY_PEER,
  Protocol,
  type Direction,
  type EndpointPolicy,
  type PolicyEntry,
  type PrefixEntry,
  type ProtocolNumber,
} from './entry.ts';
import { portInPrefix } from './ports.ts';

export type LookupKind = 'identity' | 'prefix' | 'any-peer';

export interface LookupMatch {
  kind: LookupKind;
  entry: PolicyEntry;
}

export interface Verdict {
  allowed: boolean;
  enforced: boolean;
  /** set when the verdict came from a rule-free path (not enforced, own node) */
  note?: 'not-enforced' | 'own-node' | 'default-deny';
  matches: LookupMatch[];
  /** prefix class the peer address fell in, if any */
  prefix?: PrefixEntry;
}

export class PolicyLookup {
  private readonly byPeer = new Map<string, PolicyEntry[]>();
  private readonly prefixes: Record<
    Direction,
    { range: [ipaddr.IPv4 | ipaddr.IPv6, number]; entry: PrefixEntry }[]
  > = { ingress: [], egress: [] };

  constructor(private readonly policy: EndpointPolicy) {
    for (const e of policy.entries) {
      const k = `${e.direction}|${e.peer}`;
      const list = this.byPeer.get(k);
      if (list) list.push(e);
      else this.byPeer.set(k, [e]);
    }
    for (const p of policy.prefixes)
      this.prefixes[p.direction].push({ range: ipaddr.parseCIDR(p.cidr), entry: p });
  }

  /** Decides a packet of `direction` for this endpoint; peer = source (ingress) or destination (egress). */
  decide(
    direction: Direction,
    peerIdentity: number,
    peerIp: string | undefined,
    protocol: ProtocolNumber,
    port: number,
  ): Verdict {
    const enforced =
      direction === 'ingress' ? this.policy.ingressEnforced : this.policy.egressEnforced;
    if (!enforced) return { allowed: true, enforced, note: 'not-enforced', matches: [] };
    if (direction === 'ingress' && peerIdentity === ReservedIdentity.host)
      return { allowed: true, enforced, note: 'own-node', matches: [] };
    const prefix = peerIp === undefined ? undefined : this.longestPrefix(direction, peerIp);
    const matches: LookupMatch[] = [];
    const probe = (kind: LookupKind, peer: number) => {
      const entry = this.lpm(direction, peer, protocol, port);
      if (entry) matches.push({ kind, entry });
    };
    probe('identity', peerIdentity);
    if (prefix) probe('prefix', prefix.classId);
    probe('any-peer', ANY_PEER);
    const denied = matches.some((m) => m.entry.deny);
    const allowed = !denied && matches.some((m) => !m.entry.deny);
    return {
      allowed,
      enforced,
      matches,
      prefix,
      note: matches.length === 0 ? 'default-deny' : undefined,
    };
  }

  /** Longest-prefix match over protocol then port bits within one (direction, peer). */
  private lpm(
    direction: Direction,
    peer: number,
    protocol: ProtocolNumber,
    port: number,
  ): PolicyEntry | undefined {
    let best: PolicyEntry | undefined;
    let bestLen = -1;
    for (const e of this.byPeer.get(`${direction}|${peer}`) ?? []) {
      let len: number;
      if (e.protocol === Protocol.ANY) len = 0;
      else if (e.protocol === protocol && portInPrefix(port, e.port, e.portPrefixLen))
        len = 8 + e.portPrefixLen;
      else continue;
      if (len > bestLen) {
        best = e;
        bestLen = len;
      }
    }
    return best;
  }

  private longestPrefix(direction: Direction, ip: string): PrefixEntry | undefined {
    const addr = ipaddr.parse(ip);
    let best: PrefixEntry | undefined;
    let bestLen = -1;
    for (const p of this.prefixes[direction]) {
      if (p.range[0].kind() !== addr.kind() || !addr.match(p.range)) continue;
      if (p.range[1] > bestLen) {
        best = p.entry;
        bestLen = p.range[1];
      }
    }
    return best;
  }
}
