// endpoints map codec: mirrors struct endpoint_key / struct endpoint_value in bpf/lib/maps.h.
import type { MapBackend } from './map-backend.ts';
import { formatAddr, parsePrefix } from './addr.ts';
import { BpfMap, type Codec } from './bpf-map.ts';
import { EP_F_EGRESS_ENFORCED, EP_F_INGRESS_ENFORCED } from './constants.ts';

/** The pod's IP address. */
export type EndpointKey = string;

export interface EndpointValue {
  endpointId: number;
  /** host side of the pod's veth */
  ifindex: number;
  identity: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
}

export const endpointCodec: Codec<EndpointKey, EndpointValue> = {
  keySize: 20, // { u8 family; u8 pad[3]; u8 addr[16]; }
  valueSize: 16, // { u32 endpoint_id; u32 ifindex; u32 identity; u8 flags; u8 pad[3]; }
  encodeKey(ip, out) {
    const p = parsePrefix(ip);
    out.fill(0);
    out.writeUInt8(p.family, 0);
    p.addr.copy(out, 4);
  },
  decodeKey(buf) {
    return formatAddr(buf.readUInt8(0), buf.subarray(4, 20));
  },
  encodeValue(v, out) {
    out.fill(0);
    out.writeUInt32LE(v.endpointId, 0);
    out.writeUInt32LE(v.ifindex, 4);
    out.writeUInt32LE(v.identity, 8);
    out.writeUInt8(
      (v.ingressEnforced ? EP_F_INGRESS_ENFORCED : 0) |
        (v.egressEnforced ? EP_F_EGRESS_ENFORCED : 0),
      12,
    );
  },
  decodeValue(buf) {
    const flags = buf.readUInt8(12);
    return {
      endpointId: buf.readUInt32LE(0),
      ifindex: buf.readUInt32LE(4),
      identity: buf.readUInt32LE(8),
      ingressEnforced: (flags & EP_F_INGRESS_ENFORCED) !== 0,
      egressEnforced: (flags & EP_F_EGRESS_ENFORCED) !== 0,
    };
  },
};

export type EndpointMap = BpfMap<EndpointKey, EndpointValue>;
export const endpointMap = (where: number | MapBackend): EndpointMap =>
  new BpfMap(where, endpointCodec);
