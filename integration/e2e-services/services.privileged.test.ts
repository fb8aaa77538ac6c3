// ClusterIP services end to end on one lab (one cluster, two nodes, control plane, kernel
// datapath): the lab's EndpointSlice controller lists ready pods, the agents' service table
// writes the LB maps, and real connections from pods to the ClusterIP are balanced, stay on their
// backend, hairpin, fail fast without backends and meet policy against the backend.
import test from 'ava';
import { downLab } from '../lab/lab.ts';
import { labLeftovers } from '../lab/leftovers.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import type { LabPod } from '../lab/record.ts';
import {
  kubectl,
  podYaml,
  policiesInForce,
  until,
  upPolicyLab,
  waitForPods,
  type PolicyLab,
} from '../e2e-policy/support.ts';
import { ECHO_PORTS, serviceYaml, waitForBackends } from './support.ts';
import { lastLine, netTool, type NetToolLine } from '../lab/net-tool.ts';

const name = uniqueLabName('esvc');
let env: PolicyLab | undefined;
let client: LabPod;
let echo: LabPod[] = [];
let vip = '';

const NS = 'svc';
const nodeOf = (i: number): string => env!.plan.clusters[0]!.nodes[i % 2]!.name;

test.before(async () => {
  await ensureBuilt();
  env = await upPolicyLab(name, [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }], 1500);
  const plan = env.plan;
  const nodes = plan.clusters[0]!.nodes.map((n) => n.name);
  let yaml = `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n---\n`;
  yaml += podYaml(NS, 'client', { app: 'client' }, [], nodes[0]);
  for (let i = 1; i <= 3; i++)
    yaml += podYaml(
      NS,
      `echo-${i}`,
      { app: 'echo', tier: i === 1 ? 'x' : 'y' },
      ECHO_PORTS,
      nodes[i % 2],
    );
  yaml += serviceYaml(NS, 'echo', { app: 'echo' });
  yaml += serviceYaml(NS, 'nobody', { app: 'nobody' });
  await kubectl(plan, ['apply', '-f', '-'], yaml);
  const pods = await waitForPods(
    plan,
    ['client', 'echo-1', 'echo-2', 'echo-3'].map((p) => `c1/${NS}/${p}`),
  );
  client = pods[0]!;
  echo = pods.slice(1);
  vip = JSON.parse(await kubectl(plan, ['get', 'service', '-n', NS, 'echo', '-o', 'json'])).spec
    .clusterIP;
  await waitForBackends(
    name,
    NS,
    'echo',
    echo.map((p) => p.ip),
  );
});

test.after.always(async () => {
  await downLab(name);
  const left = await labLeftovers(name);
  if (left.length > 0) throw new Error(`lab ${name} left: ${left.join(', ')}`);
});

type Counts = { counts: Record<string, number>; errors: Record<string, number> };
const who = (from: LabPod, n: number, timeout = 2) =>
  lastLine(
    netTool(from.netnsPath, ['tcp-who', vip, '80', String(n), String(timeout)], 120_000),
  ) as Promise<Counts>;

test.serial(
  '200 connections from a pod to the ClusterIP all succeed and spread over the 3 backends',
  async (t) => {
    const r = await who(client, 200);
    t.deepEqual(r.errors, {});
    t.deepEqual(Object.keys(r.counts).sort(), echo.map((p) => p.ip).sort());
    for (const n of Object.values(r.counts)) t.true(n >= 30, `uneven: ${JSON.stringify(r.counts)}`);
  },
);

test.serial(
  'a long-lived TCP connection and a UDP flow stay on their backends while backends come and go',
  async (t) => {
    const stream = netTool(client.netnsPath, ['tcp-who-stream', vip, '80', '8', '0.2'], 30_000);
    const udp = netTool(client.netnsPath, ['udp-who', vip, '53', '60', '0.12', '40555'], 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    await kubectl(
      env!.plan,
      ['apply', '-f', '-'],
      podYaml(NS, 'echo-4', { app: 'echo', tier: 'y' }, ECHO_PORTS, nodeOf(4)),
    );
    const [e4] = await waitForPods(env!.plan, [`c1/${NS}/echo-4`]);
    await waitForBackends(name, NS, 'echo', [...echo.map((p) => p.ip), e4!.ip]);
    const rounds = (await stream).filter((l: NetToolLine) => typeof l.seq === 'number');
    const flow = (await udp).at(-1) as { whos: string[]; errors: Record<string, number> };
    t.true(
      rounds.length >= 20 && rounds.every((l) => l.ok === true),
      JSON.stringify(rounds.slice(-2)),
    );
    t.is(new Set(rounds.map((l) => l.who)).size, 1, 'the TCP connection changed backend');
    t.deepEqual(flow.errors, {});
    t.is(new Set(flow.whos).size, 1, 'the UDP flow changed backend');
    await kubectl(env!.plan, ['delete', 'pod', '-n', NS, 'echo-4', '--wait=false']);
    await waitForBackends(
      name,
      NS,
      'echo',
      echo.map((p) => p.ip),
    );
  },
);

test.serial(
  'hairpin: a backend calling its own service gets answers, including from itself',
  async (t) => {
    const self = echo[0]!;
    const r = await who(self, 60);
    t.deepEqual(r.errors, {});
    t.true((r.counts[self.ip] ?? 0) > 0, JSON.stringify(r.counts));
    t.is(
      Object.values(r.counts).reduce((a, b) => a + b, 0),
      60,
    );
  },
);

test.serial('a service without backends is refused at once, not left to time out', async (t) => {
  const nobody = JSON.parse(
    await kubectl(env!.plan, ['get', 'service', '-n', NS, 'nobody', '-o', 'json']),
  ).spec.clusterIP;
  await until('nobody in the service table', async () =>
    (await waitForBackends(name, NS, 'nobody', [])) ? true : undefined,
  );
  const started = Date.now();
  const r = await lastLine(netTool(client.netnsPath, ['tcp-connect', nobody, '80', '5']));
  t.like(r, { ok: false, error: 'ConnectionRefusedError' });
  t.true(Date.now() - started < 3000, 'refusal is immediate, the connect timeout is 5 s');
  t.like(await lastLine(netTool(client.netnsPath, ['udp-send', nobody, '53', '5'])), {
    ok: false,
    error: 'ConnectionRefusedError',
  });
});

test.serial(
  'policy after translation: a client allowed to tier=x only reaches echo-1, the rest is dropped',
  async (t) => {
    await kubectl(
      env!.plan,
      ['apply', '-f', '-'],
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-to-x, namespace: ${NS}}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {tier: x}}}]
`,
    );
    await policiesInForce(env!.plan, 1);
    const r = await who(client, 24, 0.7);
    t.deepEqual(Object.keys(r.counts), [echo[0]!.ip], JSON.stringify(r));
    t.is((r.counts[echo[0]!.ip] ?? 0) + (r.errors.TimeoutError ?? 0), 24, JSON.stringify(r.errors));
    t.true(
      (r.errors.TimeoutError ?? 0) > 0,
      'some connections were balanced to a denied backend and dropped',
    );
    await kubectl(env!.plan, ['delete', 'networkpolicy', '-n', NS, 'client-to-x']);
    await policiesInForce(env!.plan, 0);
  },
);
