// stats map codec: mirrors isth_stats_v1 in bpf/lib/maps.h, a per-CPU array of u64 indexed by
// STAT_*; values are summed over the CPUs.
import { BpfMap, type Codec } from './bpf-map.ts';
import type { MapBackend } from './map-backend.ts';

export const Stat = { EVENTS_LOST: 0 } as const;

export function statsCodec(cpus: number): Codec<number, bigint> {
  return {
    keySize: 4,
    valueSize: 8 * cpus,
    encodeKey(slot, out) {
      out.writeUInt32LE(slot, 0);
    },
    decodeKey(buf) {
      return buf.readUInt32LE(0);
    },
    encodeValue(v, out) {
      out.fill(0);
      out.writeBigUInt64LE(v, 0);
    },
    decodeValue(buf) {
      let total = 0n;
      for (let c = 0; c < cpus; c++) total += buf.readBigUInt64LE(c * 8);
      return total;
    },
  };
}

export type StatsMap = BpfMap<number, bigint>;
export const statsMap = (where: number | MapBackend, cpus: number): StatsMap =>
  new BpfMap(where, statsCodec(cpus));
