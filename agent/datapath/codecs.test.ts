// Encode/decode round trips of every map codec (no root, no kernel).
import test from 'ava';
import fc from 'fast-check';
import { Protocol, type ProtocolNumber } from '../policy/entry.ts';
import type { Codec } from './bpf-map.ts';
import { counterCodec } from './counter-map.ts';
import { ctCodec } from './ct-map.ts';
import { endpointCodec } from './endpoint-map.ts';
import { decodeFlowEvent } from './events.ts';
import { ipcacheCodec } from './ipcache-map.ts';
import { canonicalPolicyKey, policyCodec, type PolicyKey } from './policy-map.ts';
import { prefixCodec } from './prefix-map.ts';

function roundTrip<K, V>(codec: Codec<K, V>, key: K, value: V): { key: K; value: V; kbuf: Buffer } {
  const kbuf = Buffer.alloc(codec.keySize);
  const vbuf = Buffer.alloc(codec.valueSize);
  codec.encodeKey(key, kbuf);
  codec.encodeValue(value, vbuf);
  return { key: codec.decodeKey(kbuf), value: codec.decodeValue(vbuf), kbuf };
}

test('ipcache key is prefixlen 32+bits, family, pad, addr; value keeps host and flags', (t) => {
  const r = roundTrip(ipcacheCodec, '10.1.2.0/24', {
    identity: 0x10005,
    hostIp: '172.18.0.5',
    encrypt: true,
  });
  t.is(r.key, '10.1.2.0/24');
  t.deepEqual(r.value, { identity: 0x10005, hostIp: '172.18.0.5', encrypt: true });
  t.is(r.kbuf.readUInt32LE(0), 56);
  t.is(r.kbuf.readUInt8(4), 2);
  t.deepEqual([...r.kbuf.subarray(8, 12)], [10, 1, 2, 0]);
  t.is(roundTrip(ipcacheCodec, '10.1.2.7', { identity: 1, encrypt: false }).key, '10.1.2.7/32');
  t.is(roundTrip(ipcacheCodec, 'fd00::1/64', { identity: 9, encrypt: false }).key, 'fd00::/64');
  t.is(
    roundTrip(ipcacheCodec, '10.9.9.9/8', { identity: 9, encrypt: false }).key,
    '10.0.0.0/8',
    'host bits zeroed',
  );
});

test('ipcache rejects a malformed address with a coded error', (t) => {
  const e = t.throws(() => ipcacheCodec.encodeKey('10.1.2/33', Buffer.alloc(24)));
  t.is((e as Error & { code: string }).code, 'EDATAPATH_ADDR');
});

test('endpoint codec mirrors endpoint_key / endpoint_value', (t) => {
  const v = {
    endpointId: 77,
    ifindex: 12,
    identity: 0x2_0001,
    ingressEnforced: true,
    egressEnforced: false,
  };
  const r = roundTrip(endpointCodec, '10.1.0.5', v);
  t.is(r.key, '10.1.0.5');
  t.deepEqual(r.value, v);
  t.deepEqual([...r.kbuf.subarray(0, 8)], [2, 0, 0, 0, 10, 1, 0, 5]);
});

const arbPolicyKey = fc
  .record({
    endpointId: fc.integer({ min: 0, max: 0xffff }),
    direction: fc.constantFrom('ingress' as const, 'egress' as const),
    peer: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: (1 << 24) + 1000 })),
    protocol: fc.constantFrom(
      Protocol.ANY,
      Protocol.TCP,
      Protocol.UDP,
      Protocol.ICMP,
      Protocol.SCTP,
    ),
    port: fc.integer({ min: 0, max: 0xffff }),
    portPrefixLen: fc.integer({ min: 0, max: 16 }),
  })
  .map((k): PolicyKey => (k.protocol === Protocol.ANY ? { ...k, port: 0, portPrefixLen: 0 } : k));

test('policy key round-trips to its canonical form (property)', (t) => {
  fc.assert(
    fc.property(arbPolicyKey, fc.boolean(), (key, deny) => {
      const r = roundTrip(policyCodec, key, { deny });
      t.deepEqual(r.key, canonicalPolicyKey(key));
      t.deepEqual(r.value, { deny });
      const prefixlen = r.kbuf.readUInt32LE(0);
      t.is(prefixlen, key.protocol === Protocol.ANY ? 72 : 80 + key.portPrefixLen);
    }),
  );
});

test('policy key puts the port in network order with a port-range prefix', (t) => {
  const key: PolicyKey = {
    endpointId: 5,
    direction: 'egress',
    peer: 0x1000003,
    protocol: Protocol.TCP as ProtocolNumber,
    port: 8080,
    portPrefixLen: 12,
  };
  const r = roundTrip(policyCodec, key, { deny: false });
  t.is(r.kbuf.readUInt16BE(14), 8080 & 0xfff0);
  t.is(r.kbuf.readUInt8(12), 1, 'egress = DIR_EGRESS');
  t.is(r.key.port, 8080 & 0xfff0);
});

test('policy key for any protocol refuses a port', (t) => {
  const e = t.throws(() =>
    policyCodec.encodeKey(
      {
        endpointId: 1,
        direction: 'ingress',
        peer: 0,
        protocol: Protocol.ANY,
        port: 80,
        portPrefixLen: 16,
      },
      Buffer.alloc(16),
    ),
  );
  t.is((e as Error & { code: string }).code, 'EDATAPATH_POLICY');
});

test('prefix codec: prefixlen 64+bits and class id', (t) => {
  const r = roundTrip(
    prefixCodec,
    { endpointId: 3, direction: 'ingress', cidr: '10.2.0.0/16' },
    { classId: (1 << 24) + 7 },
  );
  t.deepEqual(r.key, { endpointId: 3, direction: 'ingress', cidr: '10.2.0.0/16' });
  t.deepEqual(r.value, { classId: (1 << 24) + 7 });
  t.is(r.kbuf.readUInt32LE(0), 80);
});

test('ct codec mirrors ct_key / ct_value', (t) => {
  const key = {
    src: '10.1.0.5',
    dst: '10.1.0.6',
    sport: 40000,
    dport: 80,
    protocol: 6,
    endpointId: 9,
    direction: 'egress' as const,
  };
  const value = {
    expiresNs: 123456789012345n,
    packetsOrig: 10n,
    packetsReply: 8n,
    peerIdentity: 4242,
    seenReply: true,
    closing: false,
    tcpFlagsSeen: 0x12,
  };
  const r = roundTrip(ctCodec, key, value);
  t.deepEqual(r.key, key);
  t.deepEqual(r.value, value);
});

test('counter codec sums the per-CPU slots', (t) => {
  const codec = counterCodec(3);
  const buf = Buffer.alloc(codec.valueSize);
  for (let cpu = 0; cpu < 3; cpu++) {
    buf.writeBigUInt64LE(1n, cpu * 64 + 0); // ingress forwarded packets
    buf.writeBigUInt64LE(2n, cpu * 64 + 24); // egress dropped packets
    buf.writeBigUInt64LE(100n, cpu * 64 + 32); // ingress forwarded bytes
  }
  const v = codec.decodeValue(buf);
  t.is(v.ingress.forwardedPackets, 3n);
  t.is(v.egress.droppedPackets, 6n);
  t.is(v.ingress.forwardedBytes, 300n);
  t.is(v.egress.forwardedPackets, 0n);
});

test('flow event decodes struct flow_event field by field', (t) => {
  const b = Buffer.alloc(72);
  b.writeBigUInt64LE(99n, 0);
  b.writeUInt32LE(7, 8);
  b.writeUInt32LE(21, 12);
  b.writeUInt32LE(0x10001, 16);
  b.writeUInt32LE(2, 20);
  Buffer.from([10, 1, 0, 5]).copy(b, 24);
  Buffer.from([8, 8, 8, 8]).copy(b, 40);
  b.writeUInt16BE(40000, 56);
  b.writeUInt16BE(53, 58);
  b.writeUInt8(17, 60);
  b.writeUInt8(2, 61);
  b.writeUInt8(1, 62);
  b.writeUInt8(2, 63);
  b.writeUInt8(2, 64);
  b.writeUInt8(0, 65);
  b.writeUInt8(0, 66);
  b.writeUInt32LE(128, 68);
  const e = decodeFlowEvent(b);
  t.like(e, {
    endpointId: 7,
    ifindex: 21,
    srcIdentity: 0x10001,
    dstIdentity: 2,
    src: '10.1.0.5',
    dst: '8.8.8.8',
    sport: 40000,
    dport: 53,
    protocol: 17,
    direction: 'egress',
    verdict: 'dropped',
    dropReasonName: 'policy-default-deny',
    newConnection: false,
    length: 128,
  });
  t.throws(() => decodeFlowEvent(Buffer.alloc(10)));
});
