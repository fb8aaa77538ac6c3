// Policy enforcement by the pod programs with real packets between pod namespaces.
import test from 'ava';
import { PREFIX_CLASS_BASE, Protocol, type PolicyEntry } from '../policy/entry.ts';
import { DropReason } from './constants.ts';
import {
  createFixture,
  endpointIdOf,
  identityOf,
  resetFixture,
  waitForEvent,
  type Fixture,
} from './test/fixture.ts';
import type { Background, Pod } from './test/topology.ts';

let f: Fixture;
let p1: Pod, p2: Pod, p3: Pod;
const servers: Background[] = [];

test.before(async () => {
  f = await createFixture(3);
  [p1, p2, p3] = f.topo.pods as [Pod, Pod, Pod];
  for (const p of f.topo.pods) {
    servers.push(await f.topo.background(p.netnsPath, ['tcp-server', '8080', '240']));
    servers.push(await f.topo.background(p.netnsPath, ['udp-server', '5353', '240']));
  }
});

test.after.always(async () => {
  f?.dp.close();
  await f?.topo.destroy();
});

test.beforeEach(() => resetFixture(f));

const tcp = (peer: number, port = 8080, deny = false): PolicyEntry => ({
  direction: 'ingress',
  peer,
  protocol: Protocol.TCP,
  port,
  portPrefixLen: 16,
  deny,
});

const connect = (from: Pod, to: Pod, port = 8080) =>
  f.topo.tool(from.netnsPath, ['tcp-connect', to.ip, String(port), '1.5']);

test.serial('an allowed connection passes and reports a new connection', async (t) => {
  f.dp.applyEndpointPolicy(endpointIdOf(p2), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [tcp(identityOf(p1))],
    prefixes: [],
  });
  t.like(await connect(p1, p2), { ok: true });
  const e = await waitForEvent(f, (e) => e.endpointId === endpointIdOf(p2) && e.newConnection);
  t.like(e, {
    verdict: 'forwarded',
    direction: 'ingress',
    srcIdentity: identityOf(p1),
    dstIdentity: identityOf(p2),
    dport: 8080,
    protocol: 6,
  });
});

test.serial(
  'a denied connection is dropped with a drop event naming identities, ports and reason',
  async (t) => {
    f.dp.applyEndpointPolicy(endpointIdOf(p2), {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [tcp(identityOf(p1))],
      prefixes: [],
    });
    t.like(await connect(p3, p2), { ok: false });
    const e = await waitForEvent(
      f,
      (e) => e.verdict === 'dropped' && e.endpointId === endpointIdOf(p2),
    );
    t.like(e, {
      direction: 'ingress',
      srcIdentity: identityOf(p3),
      dstIdentity: identityOf(p2),
      src: p3.ip,
      dst: p2.ip,
      dport: 8080,
      protocol: 6,
      dropReason: DropReason.POLICY_DEFAULT,
      ifindex: p2.ifindex,
    });
    t.is(e.tcpFlags & 0x02, 0x02, 'the dropped packet is the SYN');
    const c = f.dp.counters.get(endpointIdOf(p2));
    t.true((c?.ingress.droppedPackets ?? 0n) > 0n);
    t.true((c?.ingress.forwardedPackets ?? 0n) >= 0n);
  },
);

test.serial('deny wins over allow, and egress policy is enforced at the sender', async (t) => {
  const ep2 = endpointIdOf(p2);
  const denyP3: PolicyEntry = {
    direction: 'ingress',
    peer: identityOf(p3),
    protocol: Protocol.ANY,
    port: 0,
    portPrefixLen: 0,
    deny: true,
  };
  f.dp.applyEndpointPolicy(ep2, {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [tcp(0), denyP3],
    prefixes: [],
  });
  t.like(await connect(p1, p2), { ok: true }, 'any-peer allow admits p1');
  t.like(await connect(p3, p2), { ok: false }, 'the deny for p3 beats the any-peer allow');
  t.like(await waitForEvent(f, (e) => e.verdict === 'dropped' && e.endpointId === ep2), {
    dropReason: DropReason.POLICY_DENY,
  });

  f.dp.applyEndpointPolicy(endpointIdOf(p1), {
    ingressEnforced: false,
    egressEnforced: true,
    entries: [],
    prefixes: [],
  });
  t.like(await connect(p1, p3), { ok: false });
  t.like(
    await waitForEvent(f, (e) => e.verdict === 'dropped' && e.endpointId === endpointIdOf(p1)),
    {
      direction: 'egress',
      srcIdentity: identityOf(p1),
      dstIdentity: identityOf(p3),
      dport: 8080,
    },
  );
});

test.serial(
  'replies of allowed connections pass while the peer may not connect back',
  async (t) => {
    f.dp.applyEndpointPolicy(endpointIdOf(p1), {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [],
      prefixes: [],
    });
    t.like(await connect(p1, p2), { ok: true }, 'TCP replies pass');
    t.like(
      await f.topo.tool(p1.netnsPath, ['udp-send', p2.ip, '5353', '1.5']),
      { ok: true },
      'UDP replies pass',
    );
    t.like(
      await f.topo.tool(p1.netnsPath, ['ping', p2.ip, '1']),
      { ok: true },
      'ICMP echo replies pass',
    );
    t.like(await connect(p2, p1), { ok: false }, 'the peer cannot initiate');
    t.like(await f.topo.tool(p2.netnsPath, ['ping', p1.ip, '1']), { ok: false });
  },
);

test.serial('an ICMP error about a tracked connection passes into an enforced pod', async (t) => {
  f.dp.applyEndpointPolicy(endpointIdOf(p1), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [],
    prefixes: [],
  });
  // Nothing listens on p2:9999: p2 answers with port unreachable, which must reach p1's socket.
  t.like(await f.topo.tool(p1.netnsPath, ['udp-send', p2.ip, '9999', '1.5']), {
    ok: false,
    error: 'ConnectionRefusedError',
  });
});

test.serial('ICMP rules match the echo request type as the port', async (t) => {
  const echo: PolicyEntry = {
    direction: 'ingress',
    peer: identityOf(p1),
    protocol: Protocol.ICMP,
    port: 8,
    portPrefixLen: 16,
    deny: false,
  };
  f.dp.applyEndpointPolicy(endpointIdOf(p2), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [echo],
    prefixes: [],
  });
  t.like(await f.topo.tool(p1.netnsPath, ['ping', p2.ip, '1']), { ok: true });
  t.like(await f.topo.tool(p3.netnsPath, ['ping', p2.ip, '1']), { ok: false });
  t.like(await waitForEvent(f, (e) => e.verdict === 'dropped' && e.protocol === 1), {
    endpointId: endpointIdOf(p2),
    srcIdentity: identityOf(p3),
    dport: 8 << 8,
  });
});

async function sniffDuring(pod: Pod, port: number, send: () => Promise<unknown>): Promise<number> {
  const sniffer = await f.topo.background(pod.netnsPath, ['sniff', 'eth0', String(port), '1.2']);
  await send();
  const done = await sniffer.waitFor((l) => 'count' in l, 5000);
  return done.count as number;
}

test.serial('unsolicited ACK and SYN-ACK from a denied peer are dropped', async (t) => {
  const ep1 = endpointIdOf(p1);
  const allowP2: PolicyEntry = {
    direction: 'ingress',
    peer: identityOf(p2),
    protocol: Protocol.ANY,
    port: 0,
    portPrefixLen: 0,
    deny: false,
  };
  f.dp.applyEndpointPolicy(ep1, {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [allowP2],
    prefixes: [],
  });
  const raw = (from: Pod, proto: string, sport: number, dport: number, flags = '') =>
    f.topo.tool(from.netnsPath, [
      'raw',
      proto,
      from.ip,
      p1.ip,
      String(sport),
      String(dport),
      flags,
    ]);

  t.is(
    await sniffDuring(p1, 41001, () => raw(p2, 'tcp', 8080, 41001, 'SA')),
    1,
    'control: an allowed peer gets through',
  );
  t.is(await sniffDuring(p1, 41002, () => raw(p3, 'tcp', 8080, 41002, 'SA')), 0, 'SYN-ACK dropped');
  t.is(await sniffDuring(p1, 41003, () => raw(p3, 'tcp', 8080, 41003, 'A')), 0, 'bare ACK dropped');
  const ack = await waitForEvent(f, (e) => e.verdict === 'dropped' && e.dport === 41003);
  t.like(ack, {
    endpointId: ep1,
    srcIdentity: identityOf(p3),
    sport: 8080,
    dropReason: DropReason.POLICY_DEFAULT,
    tcpFlags: 0x10,
  });
});

test.serial('a UDP "reply" from the right port but another peer is dropped', async (t) => {
  const ep1 = endpointIdOf(p1);
  f.dp.applyEndpointPolicy(ep1, {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [],
    prefixes: [],
  });
  const rawUdp = (from: Pod) =>
    f.topo.tool(from.netnsPath, ['raw', 'udp', from.ip, p1.ip, '5353', '41004']);
  t.like(
    await f.topo.tool(p1.netnsPath, ['udp-send', p2.ip, '5353', '1.5', '41004']),
    { ok: true },
    'tracked request',
  );
  t.is(
    await sniffDuring(p1, 41004, () => rawUdp(p2)),
    1,
    "control: the tracked peer's reply passes (CT only)",
  );
  t.is(await sniffDuring(p1, 41004, () => rawUdp(p3)), 0, 'same ports from p3: dropped');
  t.like(
    await waitForEvent(f, (e) => e.verdict === 'dropped' && e.protocol === 17 && e.dport === 41004),
    {
      endpointId: ep1,
      srcIdentity: identityOf(p3),
      sport: 5353,
      dropReason: DropReason.POLICY_DEFAULT,
    },
  );
});

test.serial('revoking an entry stops an established flow', async (t) => {
  const ep2 = endpointIdOf(p2);
  f.dp.applyEndpointPolicy(ep2, {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [tcp(identityOf(p1))],
    prefixes: [],
  });
  const stream = await f.topo.background(p1.netnsPath, ['tcp-stream', p2.ip, '8080', '8', '0.05']);
  await stream.waitFor((l) => l.seq === 10, 5000);
  t.true(
    stream.lines.every((l) => l.ok === true),
    'the stream flows while allowed',
  );
  f.dp.policy.apply(ep2, { add: [], remove: [tcp(identityOf(p1))] });
  const failed = await stream.waitFor((l) => l.ok === false, 5000);
  t.truthy(failed, 'the established stream stops');
  t.like(await waitForEvent(f, (e) => e.verdict === 'dropped' && e.endpointId === ep2), {
    srcIdentity: identityOf(p1),
    dport: 8080,
  });
  t.deepEqual(f.dp.policy.read(ep2), []);
  stream.proc.kill('SIGKILL');
  // The receiver's own ACKs must not reopen the flow as "replies": p2 acks, then p1's segment
  // must still be dropped.
  const sport = String(stream.lines[0]?.sport);
  await f.topo.tool(p2.netnsPath, ['raw', 'tcp', p2.ip, p1.ip, '8080', sport, 'A']);
  t.is(
    await sniffDuring(p2, Number(sport), () =>
      f.topo.tool(p1.netnsPath, ['raw', 'tcp', p1.ip, p2.ip, sport, '8080', 'PA']),
    ),
    0,
  );
});

test.serial(
  'a prefix with a longer except prefix inside it behaves as ipBlock/except',
  async (t) => {
    const allowClass = PREFIX_CLASS_BASE + 1;
    const exceptClass = PREFIX_CLASS_BASE + 2;
    f.dp.applyEndpointPolicy(endpointIdOf(p1), {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [
        {
          direction: 'ingress',
          peer: allowClass,
          protocol: Protocol.TCP,
          port: 8080,
          portPrefixLen: 16,
          deny: false,
        },
      ],
      prefixes: [
        { direction: 'ingress', cidr: '10.213.0.0/24', classId: allowClass },
        { direction: 'ingress', cidr: `${p3.ip}/32`, classId: exceptClass },
      ],
    });
    t.like(await connect(p2, p1), { ok: true }, 'inside the block');
    t.like(await connect(p3, p1), { ok: false }, 'inside the except');
    t.deepEqual(
      f.dp.prefixes
        .read(endpointIdOf(p1))
        .map((p) => p.cidr)
        .sort(),
      ['10.213.0.0/24', `${p3.ip}/32`],
    );
  },
);

test.serial("the pod's own node always reaches it", async (t) => {
  f.dp.applyEndpointPolicy(endpointIdOf(p1), {
    ingressEnforced: true,
    egressEnforced: true,
    entries: [],
    prefixes: [],
  });
  t.like(await f.topo.tool(f.topo.nodeNetnsPath, ['tcp-connect', p1.ip, '8080', '1.5']), {
    ok: true,
  });
  t.like(await connect(p2, p1), { ok: false }, 'while other peers are denied');
});

test.serial('port ranges match as port prefixes', async (t) => {
  // 8080/13 covers 8080..8087: 8080 matches; a /16 entry on 8081 would not.
  const entry: PolicyEntry = {
    direction: 'ingress',
    peer: identityOf(p1),
    protocol: Protocol.TCP,
    port: 8080,
    portPrefixLen: 13,
    deny: false,
  };
  f.dp.applyEndpointPolicy(endpointIdOf(p2), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [entry],
    prefixes: [],
  });
  t.like(await connect(p1, p2), { ok: true });
  f.dp.applyEndpointPolicy(endpointIdOf(p2), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [{ ...entry, port: 8081, portPrefixLen: 16 }],
    prefixes: [],
  });
  t.like(await connect(p1, p2), { ok: false });
  t.deepEqual(f.dp.policy.read(endpointIdOf(p2)), [{ ...entry, port: 8081, portPrefixLen: 16 }]);
});

test.serial('teardown leaves no namespace, mount or process behind', async (t) => {
  f.dp.close();
  for (const s of servers) s.proc.kill('SIGKILL');
  t.deepEqual(await f.topo.destroy(), []);
});
