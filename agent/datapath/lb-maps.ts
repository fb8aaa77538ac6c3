// Service load-balancing map codecs: mirror struct lb_svc_key/lb_svc_value, lb_slot_key,
// lb_backend, lb_ct_key/lb_ct_value and lb_rev_key/lb_rev_value in bpf/lib/maps.h (read by
// bpf/lib/lb.h). Ports are in network order in the kernel and host numbers here.
import type { MapBackend } from './map-backend.ts';
import { formatAddr, parsePrefix } from './addr.ts';
import { BpfMap, type Codec } from './bpf-map.ts';

export interface LbServiceKey {
  /** the frontend (ClusterIP) */
  addr: string;
  port: number;
  protocol: number;
}

export interface LbServiceValue {
  serviceId: number;
  /** backend slots 0..count-1; 0 = new connections are refused with ICMP port unreachable */
  count: number;
  flags: number;
}

export interface LbSlotKey {
  serviceId: number;
  slot: number;
}

export interface LbBackend {
  addr: string;
  port: number;
  flags: number;
}

export interface LbCtKey {
  client: string;
  vaddr: string;
  cport: number;
  vport: number;
  protocol: number;
}

export interface LbCtValue {
  expiresNs: bigint;
  backendId: number;
  serviceId: number;
  hairpin: boolean;
}

export const LB_CT_F_HAIRPIN = 1 << 0;

export const lbServiceCodec: Codec<LbServiceKey, LbServiceValue> = {
  keySize: 20, // { u8 addr[16]; be16 port; u8 protocol; u8 family; }
  valueSize: 8, // { u32 service_id; u16 count; u8 flags; u8 pad; }
  encodeKey(k, out) {
    const p = parsePrefix(k.addr);
    out.fill(0);
    p.addr.copy(out, 0);
    out.writeUInt16BE(k.port, 16);
    out.writeUInt8(k.protocol, 18);
    out.writeUInt8(p.family, 19);
  },
  decodeKey(buf) {
    return {
      addr: formatAddr(buf.readUInt8(19), buf.subarray(0, 16)),
      port: buf.readUInt16BE(16),
      protocol: buf.readUInt8(18),
    };
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeUInt32LE(v.serviceId, 0);
    out.writeUInt16LE(v.count, 4);
    out.writeUInt8(v.flags, 6);
  },
  decodeValue(buf) {
    return { serviceId: buf.readUInt32LE(0), count: buf.readUInt16LE(4), flags: buf.readUInt8(6) };
  },
};

export const lbSlotCodec: Codec<LbSlotKey, number> = {
  keySize: 8, // { u32 service_id; u32 slot; }
  valueSize: 4, // u32 backend id
  encodeKey(k, out) {
    out.writeUInt32LE(k.serviceId, 0);
    out.writeUInt32LE(k.slot, 4);
  },
  decodeKey: (buf) => ({ serviceId: buf.readUInt32LE(0), slot: buf.readUInt32LE(4) }),
  encodeValue: (v, out) => void out.writeUInt32LE(v, 0),
  decodeValue: (buf) => buf.readUInt32LE(0),
};

export const lbBackendCodec: Codec<number, LbBackend> = {
  keySize: 4, // u32 backend id
  valueSize: 20, // { u8 addr[16]; be16 port; u8 family; u8 flags; }
  encodeKey: (k, out) => void out.writeUInt32LE(k, 0),
  decodeKey: (buf) => buf.readUInt32LE(0),
  encodeValue(v, out) {
    const p = parsePrefix(v.addr);
    out.fill(0);
    p.addr.copy(out, 0);
    out.writeUInt16BE(v.port, 16);
    out.writeUInt8(p.family, 18);
    out.writeUInt8(v.flags, 19);
  },
  decodeValue(buf) {
    return {
      addr: formatAddr(buf.readUInt8(18), buf.subarray(0, 16)),
      port: buf.readUInt16BE(16),
      flags: buf.readUInt8(19),
    };
  },
};

export const lbCtCodec: Codec<LbCtKey, LbCtValue> = {
  // { u8 client[16]; u8 vaddr[16]; be16 cport; be16 vport; u8 protocol; u8 family; u16 pad; }
  keySize: 40,
  // { u64 expires_ns; u32 backend_id; u32 service_id; u8 flags; u8 pad[7]; }
  valueSize: 24,
  encodeKey(k, out) {
    const c = parsePrefix(k.client);
    out.fill(0);
    c.addr.copy(out, 0);
    parsePrefix(k.vaddr).addr.copy(out, 16);
    out.writeUInt16BE(k.cport, 32);
    out.writeUInt16BE(k.vport, 34);
    out.writeUInt8(k.protocol, 36);
    out.writeUInt8(c.family, 37);
  },
  decodeKey(buf) {
    const family = buf.readUInt8(37);
    return {
      client: formatAddr(family, buf.subarray(0, 16)),
      vaddr: formatAddr(family, buf.subarray(16, 32)),
      cport: buf.readUInt16BE(32),
      vport: buf.readUInt16BE(34),
      protocol: buf.readUInt8(36),
    };
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeBigUInt64LE(v.expiresNs, 0);
    out.writeUInt32LE(v.backendId, 8);
    out.writeUInt32LE(v.serviceId, 12);
    out.writeUInt8(v.hairpin ? LB_CT_F_HAIRPIN : 0, 16);
  },
  decodeValue(buf) {
    return {
      expiresNs: buf.readBigUInt64LE(0),
      backendId: buf.readUInt32LE(8),
      serviceId: buf.readUInt32LE(12),
      hairpin: (buf.readUInt8(16) & LB_CT_F_HAIRPIN) !== 0,
    };
  },
};

export type LbServiceMap = BpfMap<LbServiceKey, LbServiceValue>;
export type LbSlotMap = BpfMap<LbSlotKey, number>;
export type LbBackendMap = BpfMap<number, LbBackend>;

export class LbCtMap extends BpfMap<LbCtKey, LbCtValue> {
  /** Live connections to frontends and the backend each was given. */
  live(): Array<[LbCtKey, LbCtValue]> {
    const now = process.hrtime.bigint();
    return [...this.entries()].filter(([, v]) => v.expiresNs >= now);
  }
}

export interface LbMaps {
  services: LbServiceMap;
  slots: LbSlotMap;
  backends: LbBackendMap;
  ct: LbCtMap;
}

export const lbMaps = (where: {
  services: number | MapBackend;
  slots: number | MapBackend;
  backends: number | MapBackend;
  ct: number | MapBackend;
}): LbMaps => ({
  services: new BpfMap(where.services, lbServiceCodec),
  slots: new BpfMap(where.slots, lbSlotCodec),
  backends: new BpfMap(where.backends, lbBackendCodec),
  ct: new LbCtMap(where.ct, lbCtCodec),
});
