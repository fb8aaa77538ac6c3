// Flow events: mirrors struct flow_event in bpf/lib/maps.h, consumed from the isth_events_v1 ring
// buffer through the addon's event-loop consumer.
import type { Direction } from '../policy/entry.ts';
import { formatAddr } from './addr.ts';
import { DropReasonName, EVENT_F_NEW_CONNECTION, Verdict } from './constants.ts';
import { decodeDirection } from './policy-map.ts';

export interface FlowEvent {
  timestampNs: bigint;
  endpointId: number;
  ifindex: number;
  srcIdentity: number;
  dstIdentity: number;
  src: string;
  dst: string;
  /** ICMP: echo id */
  sport: number;
  /** ICMP: type << 8 | code */
  dport: number;
  protocol: number;
  /** the endpoint's policy direction: ingress = towards the pod */
  direction: Direction;
  verdict: 'forwarded' | 'dropped';
  /** DROP_* code; 0 when forwarded */
  dropReason: number;
  dropReasonName: string;
  tcpFlags: number;
  newConnection: boolean;
  /** bytes of the packet */
  length: number;
}

export const FLOW_EVENT_SIZE = 72;

export function decodeFlowEvent(buf: Buffer): FlowEvent {
  if (buf.length < FLOW_EVENT_SIZE)
    throw Object.assign(
      new Error(`flow event of ${buf.length} bytes, expected ${FLOW_EVENT_SIZE}: rebuild bpf/`),
      {
        code: 'EDATAPATH_EVENT',
      },
    );
  // { u64 ts; u32 endpoint_id; u32 ifindex; u32 src_identity; u32 dst_identity; u8 saddr[16];
  //   u8 daddr[16]; be16 sport; be16 dport; u8 protocol; u8 family; u8 direction; u8 verdict;
  //   u8 drop_reason; u8 tcp_flags; u8 flags; u8 pad; u32 len; }
  const family = buf.readUInt8(61);
  const dropReason = buf.readUInt8(64);
  return {
    timestampNs: buf.readBigUInt64LE(0),
    endpointId: buf.readUInt32LE(8),
    ifindex: buf.readUInt32LE(12),
    srcIdentity: buf.readUInt32LE(16),
    dstIdentity: buf.readUInt32LE(20),
    src: family === 0 ? '' : formatAddr(family, buf.subarray(24, 40)),
    dst: family === 0 ? '' : formatAddr(family, buf.subarray(40, 56)),
    sport: buf.readUInt16BE(56),
    dport: buf.readUInt16BE(58),
    protocol: buf.readUInt8(60),
    direction: decodeDirection(buf.readUInt8(62)),
    verdict: buf.readUInt8(63) === Verdict.DROPPED ? 'dropped' : 'forwarded',
    dropReason,
    dropReasonName: DropReasonName[dropReason] ?? `unknown-${dropReason}`,
    tcpFlags: buf.readUInt8(65),
    newConnection: (buf.readUInt8(66) & EVENT_F_NEW_CONNECTION) !== 0,
    length: buf.readUInt32LE(68),
  };
}
