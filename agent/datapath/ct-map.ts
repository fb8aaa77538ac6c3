// ct map codec: mirrors struct ct_key / struct ct_value in bpf/lib/maps.h. Entries are keyed by
// the original direction (saddr = initiator); the agent reads them for diagnostics and flushes
// an endpoint's entries when it is removed.
import type { MapBackend } from './map-backend.ts';
import type { Direction } from '../policy/entry.ts';
import { formatAddr, parsePrefix } from './addr.ts';
import { BpfMap, type Codec } from './bpf-map.ts';
import { CT_F_CLOSING, CT_F_SEEN_REPLY } from './constants.ts';
import { decodeDirection, encodeDirection } from './policy-map.ts';

export interface CtKey {
  src: string;
  dst: string;
  /** ICMP echo: sport = echo id, dport = 0 */
  sport: number;
  dport: number;
  protocol: number;
  endpointId: number;
  /** egress: the endpoint initiated; ingress: the peer did */
  direction: Direction;
}

export interface CtValue {
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns) */
  expiresNs: bigint;
  packetsOrig: bigint;
  packetsReply: bigint;
  peerIdentity: number;
  seenReply: boolean;
  closing: boolean;
  tcpFlagsSeen: number;
}

export const ctCodec: Codec<CtKey, CtValue> = {
  // { u8 saddr[16]; u8 daddr[16]; be16 sport; be16 dport; u32 endpoint_id; u8 protocol; u8 family;
  //   u8 direction; u8 pad; }
  keySize: 44,
  // { u64 expires_ns; u64 packets_orig; u64 packets_reply; u32 peer_identity; u8 flags;
  //   u8 tcp_flags_seen; u16 pad; }
  valueSize: 32,
  encodeKey(k, out) {
    const s = parsePrefix(k.src);
    const d = parsePrefix(k.dst);
    out.fill(0);
    s.addr.copy(out, 0);
    d.addr.copy(out, 16);
    out.writeUInt16BE(k.sport, 32);
    out.writeUInt16BE(k.dport, 34);
    out.writeUInt32LE(k.endpointId, 36);
    out.writeUInt8(k.protocol, 40);
    out.writeUInt8(s.family, 41);
    out.writeUInt8(encodeDirection(k.direction), 42);
  },
  decodeKey(buf) {
    const family = buf.readUInt8(41);
    return {
      src: formatAddr(family, buf.subarray(0, 16)),
      dst: formatAddr(family, buf.subarray(16, 32)),
      sport: buf.readUInt16BE(32),
      dport: buf.readUInt16BE(34),
      endpointId: buf.readUInt32LE(36),
      protocol: buf.readUInt8(40),
      direction: decodeDirection(buf.readUInt8(42)),
    };
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeBigUInt64LE(v.expiresNs, 0);
    out.writeBigUInt64LE(v.packetsOrig, 8);
    out.writeBigUInt64LE(v.packetsReply, 16);
    out.writeUInt32LE(v.peerIdentity, 24);
    out.writeUInt8((v.seenReply ? CT_F_SEEN_REPLY : 0) | (v.closing ? CT_F_CLOSING : 0), 28);
    out.writeUInt8(v.tcpFlagsSeen, 29);
  },
  decodeValue(buf) {
    const flags = buf.readUInt8(28);
    return {
      expiresNs: buf.readBigUInt64LE(0),
      packetsOrig: buf.readBigUInt64LE(8),
      packetsReply: buf.readBigUInt64LE(16),
      peerIdentity: buf.readUInt32LE(24),
      seenReply: (flags & CT_F_SEEN_REPLY) !== 0,
      closing: (flags & CT_F_CLOSING) !== 0,
      tcpFlagsSeen: buf.readUInt8(29),
    };
  },
};

export class CtMap extends BpfMap<CtKey, CtValue> {
  /** Live (unexpired) connections of one endpoint. */
  connections(endpointId: number): Array<[CtKey, CtValue]> {
    const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, like bpf_ktime_get_ns
    return [...this.entries()].filter(
      ([k, v]) => k.endpointId === endpointId && v.expiresNs >= now,
    );
  }

  /** Removes expired entries (the kernel treats them as absent; LRU would evict them anyway). */
  pruneExpired(): number {
    const now = process.hrtime.bigint();
    return this.deleteMany(
      [...this.entries()].filter(([, v]) => v.expiresNs < now).map(([k]) => k),
    );
  }

  /** Removes every entry of an endpoint (on endpoint deletion); returns how many. */
  flushEndpoint(endpointId: number): number {
    const keys = [...this.entries()].filter(([k]) => k.endpointId === endpointId).map(([k]) => k);
    return this.deleteMany(keys);
  }
}

export const ctMap = (where: number | MapBackend): CtMap => new CtMap(where, ctCodec);
