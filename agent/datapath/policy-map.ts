// policy map codec: mirrors struct policy_key / struct policy_value in bpf/lib/maps.h. The LPM
// prefix always covers endpoint id + peer + direction (72 bits), then protocol (8 bits) and
// portPrefixLen bits of the network-order port, exactly the layout of agent/policy/entry.ts.
import type { MapBackend } from './map-backend.ts';
import type { Direction, PolicyEntry, ProtocolNumber } from '../policy/entry.ts';
import { Protocol } from '../policy/entry.ts';
import { EndpointReadBatch, pushTo } from './read-batch.ts';
import { BpfMap, type Codec } from './bpf-map.ts';
import { DIR_EGRESS, DIR_INGRESS, POLICY_F_DENY, POLICY_PREFIX_BASE } from './constants.ts';

export interface PolicyKey {
  endpointId: number;
  direction: Direction;
  peer: number;
  protocol: ProtocolNumber;
  port: number;
  portPrefixLen: number;
}

export interface PolicyValue {
  deny: boolean;
}

export const encodeDirection = (d: Direction): number =>
  d === 'ingress' ? DIR_INGRESS : DIR_EGRESS;
export const decodeDirection = (b: number): Direction => (b === DIR_INGRESS ? 'ingress' : 'egress');

function invalid(message: string): Error {
  return Object.assign(new Error(message), { code: 'EDATAPATH_POLICY' });
}

/** The entry as the map holds it: port masked to its prefix, ANY protocol without port bits. */
export function canonicalPolicyKey(k: PolicyKey): PolicyKey {
  if (!Number.isInteger(k.portPrefixLen) || k.portPrefixLen < 0 || k.portPrefixLen > 16)
    throw invalid(`portPrefixLen ${k.portPrefixLen} is outside 0..16`);
  if (!Number.isInteger(k.port) || k.port < 0 || k.port > 0xffff)
    throw invalid(`port ${k.port} is outside 0..65535`);
  if (k.protocol === Protocol.ANY && (k.portPrefixLen !== 0 || k.port !== 0))
    throw invalid(
      'a policy entry for any protocol cannot name a port: set protocol, or port and portPrefixLen to 0',
    );
  const mask = k.portPrefixLen === 0 ? 0 : (0xffff << (16 - k.portPrefixLen)) & 0xffff;
  return { ...k, port: k.port & mask };
}

export const policyCodec: Codec<PolicyKey, PolicyValue> = {
  keySize: 16, // { u32 prefixlen; u32 endpoint_id; u32 peer; u8 direction; u8 protocol; be16 dport; }
  valueSize: 4, // { u8 flags; u8 pad[3]; }
  encodeKey(key, out) {
    const k = canonicalPolicyKey(key);
    const prefixlen =
      k.protocol === Protocol.ANY ? POLICY_PREFIX_BASE : POLICY_PREFIX_BASE + 8 + k.portPrefixLen;
    out.fill(0);
    out.writeUInt32LE(prefixlen, 0);
    out.writeUInt32LE(k.endpointId, 4);
    out.writeUInt32LE(k.peer >>> 0, 8);
    out.writeUInt8(encodeDirection(k.direction), 12);
    out.writeUInt8(k.protocol, 13);
    out.writeUInt16BE(k.port, 14);
  },
  decodeKey(buf) {
    const prefixlen = buf.readUInt32LE(0);
    const hasProto = prefixlen >= POLICY_PREFIX_BASE + 8;
    return {
      endpointId: buf.readUInt32LE(4),
      peer: buf.readUInt32LE(8),
      direction: decodeDirection(buf.readUInt8(12)),
      protocol: (hasProto ? buf.readUInt8(13) : Protocol.ANY) as ProtocolNumber,
      port: hasProto ? buf.readUInt16BE(14) : 0,
      portPrefixLen: hasProto ? prefixlen - POLICY_PREFIX_BASE - 8 : 0,
    };
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeUInt8(v.deny ? POLICY_F_DENY : 0, 0);
  },
  decodeValue(buf) {
    return { deny: (buf.readUInt8(0) & POLICY_F_DENY) !== 0 };
  },
};

export interface PolicyDelta {
  add: PolicyEntry[];
  remove: PolicyEntry[];
}

const toKey = (endpointId: number, e: PolicyEntry): PolicyKey => ({
  endpointId,
  direction: e.direction,
  peer: e.peer,
  protocol: e.protocol,
  port: e.port,
  portPrefixLen: e.portPrefixLen,
});

/** Identity of an entry's key (what the map dedups on). */
export const policyKeyId = (e: PolicyEntry): string => {
  const k = canonicalPolicyKey(toKey(0, e));
  return `${k.direction}|${k.peer}|${k.protocol}|${k.port}/${k.portPrefixLen}`;
};

/** The per-endpoint policy map, fed directly with agent/policy/entry.ts PolicyEntry rows. */
export class PolicyMap extends BpfMap<PolicyKey, PolicyValue> {
  private readonly batch = new EndpointReadBatch<PolicyEntry>(() => this.walk());

  /** Adds (or overwrites) first, then removes: a changed rule is never briefly absent. */
  apply(endpointId: number, delta: PolicyDelta): void {
    this.batch.invalidate();
    this.setMany(delta.add.map((e) => [toKey(endpointId, e), { deny: e.deny }] as const));
    const added = new Set(delta.add.map(policyKeyId));
    this.deleteMany(
      delta.remove.filter((e) => !added.has(policyKeyId(e))).map((e) => toKey(endpointId, e)),
    );
  }

  /** Runs `fn` with every read() served from one walk of the map (see read-batch.ts). */
  batchReads<T>(fn: () => T): T {
    return this.batch.run(fn);
  }

  /** Every entry of one endpoint as the kernel holds it. */
  read(endpointId: number): PolicyEntry[] {
    return this.batch.read(endpointId) ?? this.walk(endpointId).get(endpointId) ?? [];
  }

  /** Entries by endpoint (of one endpoint only when `only` is given). */
  private walk(only?: number): Map<number, PolicyEntry[]> {
    const out = new Map<number, PolicyEntry[]>();
    for (const [k, v] of this.entries()) {
      if (only !== undefined && k.endpointId !== only) continue;
      const { direction, peer, protocol, port, portPrefixLen } = k;
      pushTo(out, k.endpointId, { direction, peer, protocol, port, portPrefixLen, deny: v.deny });
    }
    return out;
  }

  /** What replace() would change to make the endpoint's entries equal `entries` (empty = converged). */
  delta(endpointId: number, entries: PolicyEntry[]): PolicyDelta {
    const current = new Map(this.read(endpointId).map((e) => [policyKeyId(e), e]));
    const wanted = new Map(entries.map((e) => [policyKeyId(e), e]));
    const add = [...wanted.entries()]
      .filter(([id, e]) => current.get(id)?.deny !== e.deny)
      .map(([, e]) => e);
    const remove = [...current.entries()].filter(([id]) => !wanted.has(id)).map(([, e]) => e);
    return { add, remove };
  }

  /** Converges the endpoint's entries on `entries`; returns the delta that was applied. */
  replace(endpointId: number, entries: PolicyEntry[]): PolicyDelta {
    const d = this.delta(endpointId, entries);
    this.apply(endpointId, d);
    return d;
  }
}

export const policyMap = (where: number | MapBackend): PolicyMap =>
  new PolicyMap(where, policyCodec);
