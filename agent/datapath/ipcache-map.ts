// ipcache map codec: mirrors struct ipcache_key / struct ipcache_value in bpf/lib/maps.h.
import type { MapBackend } from './map-backend.ts';
import { addrBits, formatAddr, formatPrefix, parsePrefix } from './addr.ts';
import { BpfMap, type Codec } from './bpf-map.ts';
import { IPCACHE_F_ENCRYPT } from './constants.ts';

/** An IP prefix, e.g. '10.1.2.7/32' or '0.0.0.0/0'; a bare address means a full-length prefix. */
export type IpcacheKey = string;

export interface IpcacheValue {
  identity: number;
  /** node (tunnel endpoint) hosting the address, if any */
  hostIp?: string;
  encrypt: boolean;
}

export const ipcacheCodec: Codec<IpcacheKey, IpcacheValue> = {
  keySize: 24, // { u32 prefixlen; u8 family; u8 pad[3]; u8 addr[16]; }
  valueSize: 24, // { u32 identity; u8 flags; u8 host_family; u16 pad; u8 host_addr[16]; }
  encodeKey(cidr, out) {
    const p = parsePrefix(cidr);
    out.fill(0);
    out.writeUInt32LE(32 + p.bits, 0);
    out.writeUInt8(p.family, 4);
    p.addr.copy(out, 8);
  },
  decodeKey(buf) {
    const family = buf.readUInt8(4);
    const bits = buf.readUInt32LE(0) - 32;
    return formatPrefix(family, buf.subarray(8, 24), Math.min(bits, addrBits(family)));
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeUInt32LE(v.identity, 0);
    out.writeUInt8(v.encrypt ? IPCACHE_F_ENCRYPT : 0, 4);
    if (v.hostIp) {
      const h = parsePrefix(v.hostIp);
      out.writeUInt8(h.family, 5);
      h.addr.copy(out, 8);
    }
  },
  decodeValue(buf) {
    const hostFamily = buf.readUInt8(5);
    const value: IpcacheValue = {
      identity: buf.readUInt32LE(0),
      encrypt: (buf.readUInt8(4) & IPCACHE_F_ENCRYPT) !== 0,
    };
    if (hostFamily !== 0) value.hostIp = formatAddr(hostFamily, buf.subarray(8, 24));
    return value;
  },
};

export type IpcacheMap = BpfMap<IpcacheKey, IpcacheValue>;
export const ipcacheMap = (where: number | MapBackend): IpcacheMap =>
  new BpfMap(where, ipcacheCodec);
