// The lab end to end: 2 nodes x 3 pods built from namespaces, real agents, CNI-attached pods with
// echo servers; every pod reaches every other over TCP and UDP (no policy yet), node routes are
// reconciled, dead ports read as refused, and teardown leaves nothing (also after a failed start).
import test from 'ava';
import { runCommand } from '../../agent/routing/command.ts';
import { ISTHMUS_ROUTE_PROTO } from '../../agent/routing/types.ts';
import { planLab } from './config.ts';
import { Lab, LabError } from './lab.ts';
import { labLeftovers, rootFootprint } from './leftovers.ts';
import { netnsPath } from './netns.ts';
import { probe } from './probe.ts';
import { labStatus, probeAllPairs } from './status.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { LabPod } from './record.ts';
import { ensureBuilt, uniqueLabName } from './testing.ts';

const name = uniqueLabName('lab');
const plan = planLab({
  name,
  encryption: 'none',
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
});
const ports = [
  { port: 80, protocol: 'TCP' as const, name: 'http' },
  { port: 53, protocol: 'UDP' as const, name: 'dns' },
];
let lab: Lab | undefined;
let pods: LabPod[] = [];

test.before(async () => {
  await ensureBuilt();
});

test.after.always(async () => {
  await lab?.down();
});

const nodeNs = (i: number) => plan.clusters[0]!.nodes[i]!.netns;

test.serial('a lab of 2 nodes x 3 pods comes up without touching the root namespace', async (t) => {
  lab = await Lab.up(plan, { routeIntervalMs: 300 });
  pods = await lab.addPods(
    Array.from({ length: 6 }, (_, i) => ({
      cluster: 'c1',
      namespace: i < 3 ? 'prod' : 'dev',
      name: `p${i}`,
      ports,
    })),
  );
  t.deepEqual(pods.map((p) => p.node).sort(), [
    'c1-node1',
    'c1-node1',
    'c1-node1',
    'c1-node2',
    'c1-node2',
    'c1-node2',
  ]);
  t.true(pods.every((p) => /^10\.1\.[01]\.\d+$/.test(p.ip)));
  t.is(new Set(pods.map((p) => p.ip)).size, 6);
  t.deepEqual(await rootFootprint(plan), []);
  for (const node of plan.clusters[0]!.nodes) {
    t.true(
      (await runCommand(['findmnt', '-n', '-t', 'bpf', node.bpffs])).stdout.includes(node.bpffs),
      `bpffs mounted for ${node.name}`,
    );
  }
  const again = await Lab.up(plan).catch((err: unknown) => err);
  t.is((again as LabError).code, 'ISTHMUS_LAB_EXISTS');
});

test.serial(
  'every pod reaches every other pod, same node and cross-node, TCP and UDP',
  async (t) => {
    const rows = await probeAllPairs(pods, ports);
    t.is(rows.length, 60);
    t.deepEqual(
      rows.filter((r) => !r.allowed),
      [],
    );
    t.true(
      rows.some((r) => r.from === 'c1/prod/p0' && r.to === 'c1/dev/p5' && r.protocol === 'UDP'),
    );
  },
);

test.serial(
  'lab status reports every node ready and every pod; endpoints carry named ports',
  async (t) => {
    const status = await labStatus(name);
    t.like(status, { name, ready: true, underlay: { netns: `${name}-underlay` } });
    const cluster = status!.clusters[0]!;
    t.deepEqual(
      cluster.nodes.map((n) => [n.name, n.ready, n.podCIDR]),
      [
        ['c1-node1', true, '10.1.0.0/24'],
        ['c1-node2', true, '10.1.1.0/24'],
      ],
    );
    t.deepEqual(cluster.pods.map((p) => p.name).sort(), [
      'dev/p3',
      'dev/p4',
      'dev/p5',
      'prod/p0',
      'prod/p1',
      'prod/p2',
    ]);
    const answer = await callAgent(endpointSocketPath(plan.clusters[0]!.nodes[0]!.stateDir), {
      op: 'list',
    });
    const eps = answer.ok ? (answer.endpoints ?? []) : [];
    t.is(eps.length, 3);
    t.deepEqual(eps[0]!.namedPorts, [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ]);
  },
);

test.serial('each node reaches its own pods (as kubelet health checks do)', async (t) => {
  const reqs = plan.clusters[0]!.nodes.flatMap((n) =>
    pods
      .filter((p) => p.node === n.name)
      .map((p) => ({
        fromNetns: netnsPath(n.netns),
        ip: p.ip,
        port: 80,
        protocol: 'TCP' as const,
      })),
  );
  t.is(reqs.length, 6);
  t.deepEqual(
    (await probe(reqs)).filter((r) => r.result !== 'allowed'),
    [],
  );
});

test.serial('the world host and a control plane reach pods of both nodes', async (t) => {
  const from = [plan.world.netns, plan.clusters[0]!.controlPlane.netns];
  const reqs = from.flatMap((ns) =>
    pods.map((p) => ({ fromNetns: netnsPath(ns), ip: p.ip, port: 80, protocol: 'TCP' as const })),
  );
  const results = await probe(reqs);
  t.deepEqual(
    results.filter((r) => r.result !== 'allowed'),
    [],
  );
});

test.serial(
  'a dead port reads as refused; an address nobody holds reads as dropped after confirmation',
  async (t) => {
    const [a, b] = [pods[0]!, pods[4]!];
    const results = await probe(
      [
        { fromNetns: a.netnsPath, ip: b.ip, port: 81, protocol: 'TCP' },
        { fromNetns: a.netnsPath, ip: b.ip, port: 54, protocol: 'UDP' },
        { fromNetns: a.netnsPath, ip: '10.1.1.250', port: 80, protocol: 'TCP' },
        { fromNetns: a.netnsPath, ip: '10.1.1.250', port: 53, protocol: 'UDP' },
      ],
      { timeoutMs: 300 },
    );
    t.deepEqual(
      results.map((r) => [r.result, r.attempts]),
      [
        ['refused', 1],
        ['refused', 1],
        ['dropped', 3],
        ['dropped', 3],
      ],
    );
  },
);

test.serial(
  'each node routes the other node pod CIDR over the underlay and repairs drift',
  async (t) => {
    const [n1, n2] = plan.clusters[0]!.nodes as [
      (typeof plan.clusters)[0]['nodes'][0],
      (typeof plan.clusters)[0]['nodes'][0],
    ];
    const routes = async (ns: string) =>
      (
        await runCommand([
          'ip',
          '-n',
          ns,
          '-4',
          'route',
          'show',
          'proto',
          String(ISTHMUS_ROUTE_PROTO),
        ])
      ).stdout.trim();
    t.is(await routes(nodeNs(0)), `${n2.podCIDR} via ${n2.ip} dev eth0`);
    t.is(await routes(nodeNs(1)), `${n1.podCIDR} via ${n1.ip} dev eth0`);
    await runCommand(['ip', '-n', nodeNs(0), 'route', 'del', n2.podCIDR]);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await routes(nodeNs(0))) === '')
      await new Promise((r) => setTimeout(r, 100));
    t.is(
      await routes(nodeNs(0)),
      `${n2.podCIDR} via ${n2.ip} dev eth0`,
      'the periodic pass restored the route',
    );
  },
);

test.serial('removing a pod removes its namespace, veth and reachability', async (t) => {
  const gone = pods[5]!;
  const linksBefore = (await runCommand(['ip', '-n', nodeNs(1), '-o', 'link', 'show'])).stdout
    .split('\n')
    .filter((l) => l.includes('lxc')).length;
  await lab!.removePod(gone);
  pods = pods.slice(0, 5);
  const linksAfter = (await runCommand(['ip', '-n', nodeNs(1), '-o', 'link', 'show'])).stdout
    .split('\n')
    .filter((l) => l.includes('lxc')).length;
  t.is(linksAfter, linksBefore - 1);
  t.false((await runCommand(['ip', 'netns', 'list'])).stdout.includes(gone.netns));
  const [r] = await probe(
    [{ fromNetns: pods[0]!.netnsPath, ip: gone.ip, port: 80, protocol: 'TCP' }],
    { timeoutMs: 300 },
  );
  t.is(r!.result, 'dropped');
});

test.serial(
  'teardown leaves no namespace, interface, mount or process; a second teardown is a no-op',
  async (t) => {
    const agentPids = plan.clusters[0]!.nodes.map((n) => lab!.agentPid(n.name)!);
    await lab!.down();
    await lab!.down();
    t.deepEqual(await labLeftovers(name), []);
    for (const pid of agentPids) t.throws(() => process.kill(pid, 0), { code: 'ESRCH' } as never);
    t.deepEqual(await rootFootprint(plan), []);
    lab = undefined;
  },
);

for (const stage of ['namespaces', 'mounts', 'agents'] as const) {
  test.serial(`a start that fails after ${stage} removes everything it made`, async (t) => {
    const failing = planLab({
      name: uniqueLabName('fail'),
      encryption: 'none',
      clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
    });
    const err = await Lab.up(failing, { failAfter: stage }).catch((e: unknown) => e);
    t.is((err as LabError).code, 'ISTHMUS_LAB_START');
    t.regex((err as Error).message, new RegExp(`simulated failure after ${stage}`));
    t.deepEqual(await labLeftovers(failing.name), []);
    t.deepEqual(await rootFootprint(failing), []);
  });
}
