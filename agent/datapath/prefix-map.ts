// prefixes map codec: mirrors struct prefix_key / struct prefix_value in bpf/lib/maps.h.
// prefixlen = 64 (endpoint id, direction, family, pad) + CIDR bits.
import type { MapBackend } from './map-backend.ts';
import type { Direction, PrefixEntry } from '../policy/entry.ts';
import { addrBits, formatPrefix, parsePrefix } from './addr.ts';
import { EndpointReadBatch, pushTo } from './read-batch.ts';
import { BpfMap, type Codec } from './bpf-map.ts';
import { PREFIX_PREFIX_BASE } from './constants.ts';
import { decodeDirection, encodeDirection } from './policy-map.ts';

export interface PrefixKey {
  endpointId: number;
  direction: Direction;
  cidr: string;
}

export interface PrefixValue {
  classId: number;
}

export const prefixCodec: Codec<PrefixKey, PrefixValue> = {
  keySize: 28, // { u32 prefixlen; u32 endpoint_id; u8 direction; u8 family; u16 pad; u8 addr[16]; }
  valueSize: 4, // { u32 class_id; }
  encodeKey(k, out) {
    const p = parsePrefix(k.cidr);
    out.fill(0);
    out.writeUInt32LE(PREFIX_PREFIX_BASE + p.bits, 0);
    out.writeUInt32LE(k.endpointId, 4);
    out.writeUInt8(encodeDirection(k.direction), 8);
    out.writeUInt8(p.family, 9);
    p.addr.copy(out, 12);
  },
  decodeKey(buf) {
    const family = buf.readUInt8(9);
    const bits = Math.min(buf.readUInt32LE(0) - PREFIX_PREFIX_BASE, addrBits(family));
    return {
      endpointId: buf.readUInt32LE(4),
      direction: decodeDirection(buf.readUInt8(8)),
      cidr: formatPrefix(family, buf.subarray(12, 28), bits),
    };
  },
  encodeValue(v, out) {
    out.writeUInt32LE(v.classId >>> 0, 0);
  },
  decodeValue(buf) {
    return { classId: buf.readUInt32LE(0) };
  },
};

export interface PrefixDelta {
  add: PrefixEntry[];
  remove: PrefixEntry[];
}

const toKey = (endpointId: number, e: PrefixEntry): PrefixKey => ({
  endpointId,
  direction: e.direction,
  cidr: e.cidr,
});
const keyId = (e: PrefixEntry): string => {
  const p = parsePrefix(e.cidr);
  return `${e.direction}|${formatPrefix(p.family, p.addr, p.bits)}`;
};

/** Per-endpoint CIDR classes, fed with agent/policy/entry.ts PrefixEntry rows. */
export class PrefixMap extends BpfMap<PrefixKey, PrefixValue> {
  private readonly batch = new EndpointReadBatch<PrefixEntry>(() => this.walk());

  apply(endpointId: number, delta: PrefixDelta): void {
    this.batch.invalidate();
    this.setMany(delta.add.map((e) => [toKey(endpointId, e), { classId: e.classId }] as const));
    const added = new Set(delta.add.map(keyId));
    this.deleteMany(
      delta.remove.filter((e) => !added.has(keyId(e))).map((e) => toKey(endpointId, e)),
    );
  }

  /** Runs `fn` with every read() served from one walk of the map (see read-batch.ts). */
  batchReads<T>(fn: () => T): T {
    return this.batch.run(fn);
  }

  read(endpointId: number): PrefixEntry[] {
    return this.batch.read(endpointId) ?? this.walk(endpointId).get(endpointId) ?? [];
  }

  /** Entries by endpoint (of one endpoint only when `only` is given). */
  private walk(only?: number): Map<number, PrefixEntry[]> {
    const out = new Map<number, PrefixEntry[]>();
    for (const [k, v] of this.entries())
      if (only === undefined || k.endpointId === only)
        pushTo(out, k.endpointId, { direction: k.direction, cidr: k.cidr, classId: v.classId });
    return out;
  }

  /** What replace() would change (empty = converged). */
  delta(endpointId: number, entries: PrefixEntry[]): PrefixDelta {
    const current = new Map(this.read(endpointId).map((e) => [keyId(e), e]));
    const wanted = new Map(entries.map((e) => [keyId(e), e]));
    const add = [...wanted.entries()]
      .filter(([id, e]) => current.get(id)?.classId !== e.classId)
      .map(([, e]) => e);
    const remove = [...current.entries()].filter(([id]) => !wanted.has(id)).map(([, e]) => e);
    return { add, remove };
  }

  replace(endpointId: number, entries: PrefixEntry[]): PrefixDelta {
    const d = this.delta(endpointId, entries);
    this.apply(endpointId, d);
    return d;
  }
}

export const prefixMap = (where: number | MapBackend): PrefixMap =>
  new PrefixMap(where, prefixCodec);
