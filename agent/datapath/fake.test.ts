// The fake datapath keeps the real codecs' canonical forms and the shared map logic.
import test from 'ava';
import { Protocol, PREFIX_CLASS_BASE, type EndpointPolicy } from '../policy/entry.ts';
import { createFakeDatapath } from './fake.ts';

const policy: EndpointPolicy = {
  ingressEnforced: true,
  egressEnforced: false,
  entries: [
    {
      direction: 'ingress',
      peer: 0x10005,
      protocol: Protocol.TCP,
      port: 8080,
      portPrefixLen: 13,
      deny: false,
    },
    {
      direction: 'ingress',
      peer: PREFIX_CLASS_BASE + 1,
      protocol: Protocol.ANY,
      port: 0,
      portPrefixLen: 0,
      deny: true,
    },
  ],
  prefixes: [{ direction: 'ingress', cidr: '10.9.0.0/16', classId: PREFIX_CLASS_BASE + 1 }],
};

test('policy writes, read-back, convergence and endpoint removal', (t) => {
  const dp = createFakeDatapath();
  dp.endpoints.set('10.1.0.5', {
    endpointId: 5,
    ifindex: 9,
    identity: 77,
    ingressEnforced: false,
    egressEnforced: false,
  });
  dp.attachEndpoint({ ifindex: 9 });
  t.false(dp.endpointPolicyConverged(5, policy));
  dp.applyEndpointPolicy(5, policy);
  t.true(dp.endpointPolicyConverged(5, policy));
  t.like(dp.endpoints.get('10.1.0.5'), { ingressEnforced: true, egressEnforced: false });
  t.deepEqual(dp.policy.read(5)[0]?.port, 8080 & 0xfff8, 'ports are stored masked to their prefix');
  t.deepEqual(dp.policy.delta(5, policy.entries.slice(1)).remove.length, 1);
  dp.removeEndpoint(5);
  t.deepEqual(dp.policy.read(5), []);
  t.deepEqual(dp.prefixes.read(5), []);
  t.is(dp.endpoints.get('10.1.0.5'), undefined);
  t.deepEqual(dp.attached({ ifindex: 9 }), { ingressProgramId: 0, egressProgramId: 0 });
});

test('update flags behave like the kernel', (t) => {
  const dp = createFakeDatapath();
  dp.ipcache.set('10.0.0.0/8', { identity: 2, encrypt: false }, 1);
  const e = t.throws(() => dp.ipcache.set('10.0.0.0/8', { identity: 3, encrypt: false }, 1));
  t.is((e as Error & { code: string }).code, 'EEXIST');
  t.deepEqual([...dp.ipcache.entries()], [['10.0.0.0/8', { identity: 2, encrypt: false }]]);
});

test('emit delivers events to subscribers until they unsubscribe', (t) => {
  const dp = createFakeDatapath();
  const seen: number[] = [];
  const stop = dp.subscribeEvents((e) => seen.push(e.endpointId));
  const event = { endpointId: 5 } as Parameters<typeof dp.emit>[0];
  dp.emit(event);
  stop();
  dp.emit(event);
  t.deepEqual(seen, [5]);
});

test('expired connections are pruned, live ones kept', (t) => {
  const dp = createFakeDatapath();
  const key = {
    src: '10.1.0.5',
    dst: '10.1.0.6',
    sport: 40000,
    dport: 80,
    protocol: 6,
    endpointId: 5,
    direction: 'egress' as const,
  };
  const value = {
    expiresNs: 0n,
    packetsOrig: 1n,
    packetsReply: 0n,
    peerIdentity: 9,
    seenReply: false,
    closing: false,
    tcpFlagsSeen: 2,
  };
  dp.ct.set(key, value);
  dp.ct.set(
    { ...key, sport: 40001 },
    { ...value, expiresNs: process.hrtime.bigint() + 10_000_000_000n },
  );
  t.is(dp.ct.pruneExpired(), 1);
  t.deepEqual(
    dp.ct.connections(5).map(([k]) => k.sport),
    [40001],
  );
});

test('stats sum their per-CPU slots', (t) => {
  const dp = createFakeDatapath();
  t.is(dp.stats.get(0), undefined);
  dp.stats.set(0, 7n);
  t.is(dp.stats.get(0), 7n);
});
