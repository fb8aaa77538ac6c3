// The contract between the policy engine (agent/policy) and the datapath (agent/datapath, bpf/):
// what the engine computes for one endpoint is exactly what the BPF policy maps hold.
//
// Lookup the datapath performs for a packet of direction D between endpoint E and peer P
// (peer = source for ingress, destination for egress), port = destination port:
//   1. if D is not enforced for E: allow.
//   2. id    = ipcache[P] (longest prefix) or WORLD (2); the pod's own node is HOST (1) and
//              ingress from it is always allowed.
//   3. class = prefixes[E, D, P] (longest prefix), if any — a "prefix class" id >= PREFIX_CLASS_BASE.
//   4. lookups in policy[E, D, peer, proto, port] (LPM over protocol then port bits), for
//      peer = id, peer = class (when found) and peer = ANY_PEER (0).
//   5. any match that is deny -> drop; else any allow -> pass; else drop (default deny).
// The engine guarantees that, within one (E, D, peer), entries never overlap in a way where a
// longer allow prefix hides a shorter deny: deny is resolved before entries are emitted.

export type Direction = 'ingress' | 'egress';

/** Peer value meaning "any peer" (an L3 wildcard). */
export const ANY_PEER = 0;
/** Prefix-class ids start here: above every 24-bit numeric identity (Cilium's local scope). */
export const PREFIX_CLASS_BASE = 1 << 24;

export const Protocol = { ANY: 0, ICMP: 1, TCP: 6, UDP: 17, SCTP: 132 } as const;
export type ProtocolNumber = (typeof Protocol)[keyof typeof Protocol];

/** One row of the per-endpoint policy map. */
export interface PolicyEntry {
  direction: Direction;
  /** numeric identity, ANY_PEER, or a prefix class id (>= PREFIX_CLASS_BASE) */
  peer: number;
  /** Protocol.ANY matches every protocol; then portPrefixLen must be 0 */
  protocol: ProtocolNumber;
  /** destination port (host byte order); 0 with portPrefixLen 0 for all ports */
  port: number;
  /** how many leading bits of the 16-bit port must match (0..16) */
  portPrefixLen: number;
  deny: boolean;
}

/** One row of the per-endpoint prefix map: peer addresses whose longest match is `cidr`. */
export interface PrefixEntry {
  direction: Direction;
  /** IPv4 or IPv6 CIDR, canonical (host bits zero) */
  cidr: string;
  /** prefix class id (>= PREFIX_CLASS_BASE), referenced by PolicyEntry.peer */
  classId: number;
}

/** Everything the datapath enforces for one local endpoint. */
export interface EndpointPolicy {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  entries: PolicyEntry[];
  prefixes: PrefixEntry[];
}
