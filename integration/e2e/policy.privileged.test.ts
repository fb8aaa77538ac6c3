// Issue 2 end to end: 2 nodes x 3 pods, real agents with the kernel datapath, identities and
// policy entries written through the typed wrappers into each node's pinned maps, and real packets
// between pods on the same node and across nodes. Drops are confirmed by the lab's probe (retried
// with longer timeouts) and by the drop event of the node that enforced them. Last, on the same
// lab, both agents restart under a live stream (the restart test below).
import test, { type ExecutionContext } from 'ava';
import { DropReason } from '../../agent/datapath/constants.ts';
import type { FlowEvent } from '../../agent/datapath/events.ts';
import {
  ANY_PEER,
  PREFIX_CLASS_BASE,
  Protocol,
  type PolicyEntry,
  type ProtocolNumber,
} from '../../agent/policy/entry.ts';
import { planLab } from '../lab/config.ts';
import { Lab } from '../lab/lab.ts';
import { labLeftovers, rootFootprint } from '../lab/leftovers.ts';
import { probe, type ProbeProtocol, type ProbeVerdict } from '../lab/probe.ts';
import type { LabPod } from '../lab/record.ts';
import { probeAllPairs } from '../lab/status.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import { Mesh, netTool, netToolBackground, sleep } from './mesh.ts';
import { pinnedProgramIds } from './node-maps.ts';
import { attachedPrograms, inPod, oneWay, restartSnapshot } from './restart-checks.ts';

const name = uniqueLabName('e2ep');
const plan = planLab({
  name,
  encryption: 'none',
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
});
const [node1, node2] = plan.clusters[0]!.nodes.map((n) => n.name) as [string, string];
const ports = [
  { port: 80, protocol: 'TCP' as const },
  { port: 53, protocol: 'UDP' as const },
  { port: 8080, protocol: 'TCP' as const },
];
let lab: Lab | undefined;
let mesh: Mesh | undefined;
// a1..a3 on node1, b1..b3 on node2
let a1: LabPod, a2: LabPod, a3: LabPod, b1: LabPod, b2: LabPod, b3: LabPod;

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { datapath: 'bpf', kubernetes: false });
  const specs = ['a1', 'a2', 'a3', 'b1', 'b2', 'b3'].map((pod) => ({
    cluster: 'c1',
    namespace: 'e2e',
    name: pod,
    node: pod.startsWith('a') ? node1 : node2,
    ports,
  }));
  [a1, a2, a3, b1, b2, b3] = (await lab.addPods(specs)) as [
    LabPod,
    LabPod,
    LabPod,
    LabPod,
    LabPod,
    LabPod,
  ];
  mesh = new Mesh(lab, [a1, a2, a3, b1, b2, b3]);
});

test.after.always(async () => {
  mesh?.close();
  await lab?.down();
});

test.beforeEach(() => mesh?.reset());

const allow = (
  direction: 'ingress' | 'egress',
  peer: number,
  protocol: ProtocolNumber,
  port: number,
): PolicyEntry => ({ direction, peer, protocol, port, portPrefixLen: 16, deny: false });

type Expectation = [LabPod, LabPod, number, ProbeProtocol, 'allowed' | 'dropped', string];

/** Probes all cases in one batch (drops are confirmed by the probe's retries) and checks each. */
async function expectReach(t: ExecutionContext, cases: Expectation[]): Promise<void> {
  const results = await probe(
    cases.map(([from, to, port, protocol]) => ({
      fromNetns: from.netnsPath,
      ip: to.ip,
      port,
      protocol,
    })),
  );
  cases.forEach(([from, to, port, protocol, expected, why], i) =>
    t.is(results[i]!.result, expected, `${from.name} -> ${to.name} ${port}/${protocol} ${why}`),
  );
}

/** Policy drops only: the IPv4-only datapath also drops the pods' IPv6 neighbour chatter. */
const policyDrop = (e: FlowEvent): boolean =>
  e.verdict === 'dropped' &&
  (e.dropReason === DropReason.POLICY_DENY || e.dropReason === DropReason.POLICY_DEFAULT);

/** A drop event from `node` for the flow from -> to with the given direction and reason. */
function dropOf(
  from: LabPod,
  to: LabPod,
  direction: 'ingress' | 'egress',
  reason: number,
): (e: FlowEvent) => boolean {
  const m = mesh!;
  return (e) =>
    e.verdict === 'dropped' &&
    e.direction === direction &&
    e.src === from.ip &&
    e.dst === to.ip &&
    e.srcIdentity === m.identityOf(from) &&
    e.dstIdentity === m.identityOf(to) &&
    e.dropReason === reason;
}

test.serial(
  'without policy every pod reaches every other, on the same node and across',
  async (t) => {
    const rows = await probeAllPairs(mesh!.pods, ports);
    t.is(rows.length, 6 * 5 * 3);
    t.deepEqual(
      rows.filter((r) => !r.allowed),
      [],
    );
    const seen = await mesh!.waitForEvent(
      node2,
      (e) =>
        e.verdict === 'forwarded' &&
        e.newConnection &&
        e.direction === 'ingress' &&
        e.src === a1.ip &&
        e.dst === b1.ip &&
        e.srcIdentity === mesh!.identityOf(a1) &&
        e.dstIdentity === mesh!.identityOf(b1),
    );
    t.truthy(seen, 'a new-connection event with both identities on the receiving node');
  },
);

test.serial(
  'ingress: allowed peers pass with their replies, denied peers are dropped on the receiving node',
  async (t) => {
    const m = mesh!;
    m.applyPolicy(b1, {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [
        allow('ingress', m.identityOf(a1), Protocol.TCP, 80),
        allow('ingress', m.identityOf(a1), Protocol.UDP, 53),
        { ...allow('ingress', m.identityOf(a3), Protocol.ANY, 0), portPrefixLen: 0, deny: true },
        allow('ingress', ANY_PEER, Protocol.TCP, 8080),
      ],
      prefixes: [],
    });
    await expectReach(t, [
      [a1, b1, 80, 'TCP', 'allowed', 'cross-node TCP, echo reply came back'],
      [a1, b1, 53, 'UDP', 'allowed', 'cross-node UDP, echo reply came back'],
      [a2, b1, 80, 'TCP', 'dropped', ''],
      [a2, b1, 8080, 'TCP', 'allowed', 'any peer on 8080'],
      [a3, b1, 8080, 'TCP', 'dropped', 'a deny of the peer beats an allow of any peer'],
      [b2, b1, 80, 'TCP', 'dropped', 'same node'],
      [a1, b1, 53, 'TCP', 'dropped', 'other protocol'],
    ]);
    t.truthy(await m.waitForEvent(node2, dropOf(a2, b1, 'ingress', DropReason.POLICY_DEFAULT)));
    t.truthy(await m.waitForEvent(node2, dropOf(a3, b1, 'ingress', DropReason.POLICY_DENY)));
    t.truthy(await m.waitForEvent(node2, dropOf(b2, b1, 'ingress', DropReason.POLICY_DEFAULT)));
    const early = m.node(node1).events.filter(policyDrop);
    t.deepEqual(early, [], 'nothing is dropped on the sending node');
  },
);

test.serial(
  'egress: the sender drops what its policy denies; replies of allowed connections pass its default-deny ingress',
  async (t) => {
    const m = mesh!;
    m.applyPolicy(a1, {
      ingressEnforced: true,
      egressEnforced: true,
      entries: [allow('egress', m.identityOf(b1), Protocol.TCP, 80)],
      prefixes: [],
    });
    await expectReach(t, [
      [a1, b1, 80, 'TCP', 'allowed', ''],
      [a1, b2, 80, 'TCP', 'dropped', 'cross-node egress deny'],
      [a1, a2, 80, 'TCP', 'dropped', 'same-node egress deny'],
      [a1, b1, 53, 'UDP', 'dropped', 'protocol not allowed'],
      [b1, a1, 80, 'TCP', 'dropped', 'a1 admits nobody'],
    ]);
    t.truthy(await m.waitForEvent(node1, dropOf(a1, b2, 'egress', DropReason.POLICY_DEFAULT)));
    t.truthy(await m.waitForEvent(node1, dropOf(a1, a2, 'egress', DropReason.POLICY_DEFAULT)));
    t.truthy(await m.waitForEvent(node1, dropOf(b1, a1, 'ingress', DropReason.POLICY_DEFAULT)));
    const late = m.node(node2).events.filter(policyDrop);
    t.deepEqual(late, [], 'egress denies never reach the receiving node');
  },
);

const UNSOLICITED_PORT = 45678;

/** Sends a bare ACK, a SYN-ACK (from TCP 80) and a UDP "reply" (from 53) to `to`, counting what
 * arrives on the pod's eth0. */
async function unsolicited(from: LabPod, to: LabPod): Promise<number> {
  const sniff = netToolBackground(
    to.netnsPath,
    ['sniff', 'eth0', String(UNSOLICITED_PORT), '4'],
    10_000,
  );
  await sniff.first;
  for (const [proto, sport, flags] of [
    ['tcp', '80', 'A'],
    ['tcp', '80', 'SA'],
    ['udp', '53', ''],
  ] as const) {
    await netTool(
      from.netnsPath,
      ['raw', proto, from.ip, to.ip, sport, String(UNSOLICITED_PORT), flags],
      5000,
    );
  }
  await sniff.done;
  return Number(sniff.lines.find((l) => 'count' in l)?.count ?? -1);
}

test.serial(
  'an unsolicited ACK, SYN-ACK and UDP reply from a denied peer are dropped (same node and across)',
  async (t) => {
    const m = mesh!;
    t.is(await unsolicited(b1, a2), 3, 'control: an open pod receives all three');
    m.applyPolicy(a1, { ingressEnforced: true, egressEnforced: false, entries: [], prefixes: [] });
    t.is(await unsolicited(b1, a1), 0, 'from another node');
    t.is(await unsolicited(a3, a1), 0, 'from the same node');
    for (const from of [b1, a3]) {
      const drops = await waitForCount(
        m,
        node1,
        (e) =>
          dropOf(from, a1, 'ingress', DropReason.POLICY_DEFAULT)(e) && e.dport === UNSOLICITED_PORT,
        3,
      );
      t.deepEqual(
        drops.map((e) => [e.protocol, e.tcpFlags & 0x12]).sort(),
        [
          [Protocol.TCP, 0x10],
          [Protocol.TCP, 0x12],
          [Protocol.UDP, 0],
        ].sort(),
        `ACK, SYN-ACK and UDP from ${from.name} dropped with events`,
      );
    }
  },
);

async function waitForCount(
  m: Mesh,
  node: string,
  pred: (e: FlowEvent) => boolean,
  count: number,
): Promise<FlowEvent[]> {
  const deadline = Date.now() + 3000;
  for (;;) {
    m.node(node).maps.drainEvents();
    const hits = m.node(node).events.filter(pred);
    if (hits.length >= count || Date.now() > deadline) return hits;
    await sleep(50);
  }
}

test.serial('revoking an entry stops an established cross-node flow', async (t) => {
  const m = mesh!;
  const policy = {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [allow('ingress', m.identityOf(a1), Protocol.TCP, 80)],
    prefixes: [],
  };
  m.applyPolicy(b2, policy);
  const stream = netToolBackground(a1.netnsPath, ['tcp-stream', b2.ip, '80', '20', '0.1'], 30_000);
  const deadline = Date.now() + 10_000;
  while (stream.lines.filter((l) => l.ok === true).length < 10 && Date.now() < deadline)
    await sleep(100);
  t.true(stream.lines.filter((l) => l.ok === true).length >= 10, 'the stream runs while allowed');
  m.applyPolicy(b2, { ...policy, entries: [] });
  const revokedAt = Date.now();
  await stream.done;
  const last = stream.lines.at(-1)!;
  t.false(last.ok as boolean, 'the stream ended in a failure, not by running out its time');
  t.true(Date.now() - revokedAt < 15_000);
  t.truthy(await m.waitForEvent(node2, dropOf(a1, b2, 'ingress', DropReason.POLICY_DEFAULT)));
});

test.serial(
  'a prefix entry with a longer except prefix inside it acts as ipBlock/except',
  async (t) => {
    const m = mesh!;
    const node1Cidr = plan.clusters[0]!.nodes[0]!.podCIDR;
    const block = PREFIX_CLASS_BASE + 1;
    const except = PREFIX_CLASS_BASE + 2;
    m.applyPolicy(b3, {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [allow('ingress', block, Protocol.TCP, 80)],
      prefixes: [
        { direction: 'ingress', cidr: node1Cidr, classId: block },
        { direction: 'ingress', cidr: `${a2.ip}/32`, classId: except },
      ],
    });
    await expectReach(t, [
      [a1, b3, 80, 'TCP', 'allowed', 'inside the block'],
      [a3, b3, 80, 'TCP', 'allowed', 'inside the block'],
      [a2, b3, 80, 'TCP', 'dropped', 'inside the except'],
      [b1, b3, 80, 'TCP', 'dropped', 'outside the block'],
    ]);
    t.truthy(await m.waitForEvent(node2, dropOf(a2, b3, 'ingress', DropReason.POLICY_DEFAULT)));
  },
);

// Restart without disruption (issue 2), on this file's lab: both agents restart, one after the
// other, during a cross-node iperf3 stream from a1 to b1 under a one-way policy (a1 may connect to
// b1, b1 may not connect to a1), while b1 probes a1 the whole time. The stream must run to its end
// without error, no probe of b1 may ever get through, and the restarted agents must adopt the
// pinned maps (same ids) and restore every endpoint, the programs they attach being the ones pinned.
const IPERF_PORT = 5201;
const STREAM_SECONDS = 16;

test.serial(
  'agents restart during a TCP stream: the stream continues, denied probes never pass, pins are adopted',
  async (t) => {
    const m = mesh!;
    const [a, b] = [a1, b1];
    const nodes = plan.clusters[0]!.nodes;
    const policy = oneWay(m, a, IPERF_PORT);
    m.applyPolicy(a, policy.a);
    m.applyPolicy(b, policy.b);
    const [ok] = await probe([{ fromNetns: a.netnsPath, ip: b.ip, port: 80, protocol: 'TCP' }]);
    const [no] = await probe([{ fromNetns: b.netnsPath, ip: a.ip, port: 80, protocol: 'TCP' }]);
    t.is(ok!.result, 'allowed', 'A reaches B before the restart');
    t.is(no!.result, 'dropped', 'B does not reach A before the restart');
    const before = await restartSnapshot(lab!, m, nodes);
    const programsBefore = nodes.map((n) => pinnedProgramIds(n));
    t.deepEqual(
      attachedPrograms(m, nodes),
      programsBefore,
      'before: the pinned programs are attached',
    );

    const server = inPod(b, ['iperf3', '-s', '-1', '-p', String(IPERF_PORT)], 60_000);
    await sleep(500);
    const client = inPod(
      a,
      [
        'iperf3',
        '-c',
        b.ip,
        '-p',
        String(IPERF_PORT),
        '-t',
        String(STREAM_SECONDS),
        '-i',
        '1',
        '-J',
      ],
      (STREAM_SECONDS + 20) * 1000,
    );
    // Denied probes from B to A, back to back, until the stream is over.
    let streaming = true;
    const verdicts: ProbeVerdict[] = [];
    const prober = (async () => {
      while (streaming) {
        const rs = await probe(
          Array.from({ length: 4 }, () => ({
            fromNetns: b.netnsPath,
            ip: a.ip,
            port: 80,
            protocol: 'TCP' as const,
          })),
          { timeoutMs: 300, confirmRetries: 0 },
        );
        verdicts.push(...rs.map((r) => r.result));
      }
    })();
    // Sample the tc slots of both veths all along: a restart must never leave one empty.
    const empty: string[] = [];
    let samples = 0;
    const sampler = setInterval(() => {
      samples++;
      for (const pod of m.pods) {
        const on = m.node(pod.node).maps.attached({ ifindex: m.hostIfindexOf(pod) });
        if (!on.ingressProgramId || !on.egressProgramId) empty.push(`${pod.name}@${Date.now()}`);
      }
    }, 10);
    await sleep(3000);
    const pidsBefore = [lab!.agentPid(node1), lab!.agentPid(node2)];
    await lab!.restartAgent(node1);
    await sleep(1000);
    await lab!.restartAgent(node2);
    const pidsAfter = [lab!.agentPid(node1), lab!.agentPid(node2)];
    const iperf = await client;
    clearInterval(sampler);
    streaming = false;
    await prober;
    await server;

    t.notDeepEqual(pidsAfter, pidsBefore, 'both agents were replaced');
    t.true(samples > 100, `tc slots sampled ${samples} times`);
    t.deepEqual(empty, [], 'no moment without programs on a pod veth');
    t.is(iperf.code, 0, `iperf3 ran to its end:\n${iperf.out.slice(-2000)}`);
    const report = JSON.parse(iperf.out) as {
      error?: string;
      intervals: Array<{ sum: { bits_per_second: number } }>;
    };
    t.is(report.error, undefined);
    t.true(report.intervals.length >= STREAM_SECONDS - 1);
    t.deepEqual(
      report.intervals.map((i) => i.sum.bits_per_second).filter((bps) => !(bps > 0)),
      [],
      'no one-second interval of the stream stalled',
    );
    t.true(verdicts.length >= 20, `probes ran throughout (${verdicts.length})`);
    t.deepEqual(
      verdicts.filter((v) => v !== 'dropped'),
      [],
      'every probe from B to A was dropped',
    );

    const after = await restartSnapshot(lab!, m, nodes);
    t.deepEqual(after, before, 'same map ids, endpoints, rows (identities, flags) and policy');
    t.deepEqual(
      attachedPrograms(m, nodes),
      nodes.map(pinnedProgramIds),
      'after: the programs the new agents attached are the ones pinned',
    );
    t.log(`${verdicts.length} denied probes, ${samples} samples of the tc slots`);
    t.log('program ids before', programsBefore, 'after', nodes.map(pinnedProgramIds));
    const [ok2] = await probe([{ fromNetns: a.netnsPath, ip: b.ip, port: 80, protocol: 'TCP' }]);
    t.is(ok2!.result, 'allowed', 'A still reaches B on a new connection');
  },
);

test.serial('teardown leaves no namespace, mount, process or root-namespace trace', async (t) => {
  mesh?.close();
  mesh = undefined;
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(plan), []);
});
