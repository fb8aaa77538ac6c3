// counters map codec: mirrors the per-CPU struct endpoint_counters in bpf/lib/maps.h
// ({ u64 packets[2][2]; u64 bytes[2][2]; } indexed [direction][0 forwarded, 1 dropped]),
// summed over the CPUs.
import type { MapBackend } from './map-backend.ts';
import { BpfMap, type Codec } from './bpf-map.ts';

export interface DirectionCounters {
  forwardedPackets: bigint;
  forwardedBytes: bigint;
  droppedPackets: bigint;
  droppedBytes: bigint;
}

export interface EndpointCounters {
  ingress: DirectionCounters;
  egress: DirectionCounters;
}

const SLOT = 64; // sizeof(struct endpoint_counters), already a multiple of 8

function readDirection(buf: Buffer, cpus: number, dir: number): DirectionCounters {
  const sum = (offset: number): bigint => {
    let total = 0n;
    for (let c = 0; c < cpus; c++) total += buf.readBigUInt64LE(c * SLOT + offset);
    return total;
  };
  // packets[dir][v] at (dir*2+v)*8; bytes[dir][v] at 32 + (dir*2+v)*8
  return {
    forwardedPackets: sum((dir * 2 + 0) * 8),
    droppedPackets: sum((dir * 2 + 1) * 8),
    forwardedBytes: sum(32 + (dir * 2 + 0) * 8),
    droppedBytes: sum(32 + (dir * 2 + 1) * 8),
  };
}

export function counterCodec(cpus: number): Codec<number, EndpointCounters> {
  return {
    keySize: 4,
    valueSize: SLOT * cpus,
    encodeKey(id, out) {
      out.writeUInt32LE(id, 0);
    },
    decodeKey(buf) {
      return buf.readUInt32LE(0);
    },
    encodeValue(v, out) {
      // Written on CPU 0 only; the others are zeroed (used to reset an endpoint's counters).
      out.fill(0);
      const dirs = [v.ingress, v.egress];
      dirs.forEach((d, i) => {
        out.writeBigUInt64LE(d.forwardedPackets, i * 2 * 8);
        out.writeBigUInt64LE(d.droppedPackets, (i * 2 + 1) * 8);
        out.writeBigUInt64LE(d.forwardedBytes, 32 + i * 2 * 8);
        out.writeBigUInt64LE(d.droppedBytes, 32 + (i * 2 + 1) * 8);
      });
    },
    decodeValue(buf) {
      return { ingress: readDirection(buf, cpus, 0), egress: readDirection(buf, cpus, 1) };
    },
  };
}

export type CounterMap = BpfMap<number, EndpointCounters>;
export const counterMap = (where: number | MapBackend, cpus: number): CounterMap =>
  new BpfMap(where, counterCodec(cpus));
