// The lab through its CLI, as a user drives it: `isthmus lab up` (detached supervisor), status
// JSON, Nodes in the API, pods applied with `lab kubectl` run by the lab kubelet (CNI, echo,
// status through /status), scheduled when they name no node, reachable by `lab probe`, removed by
// `kubectl delete`; a dead kubelet is revived and adopts its pods; `lab down` after the supervisor
// died leaves nothing. One lab for the whole file.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runCommand } from '../../agent/routing/command.ts';
import { planLab, RUN_ROOT } from './config.ts';
import { kubectlCapture } from './kubectl.ts';
import { downLab } from './lab.ts';
import { labLeftovers, rootFootprint } from './leftovers.ts';
import { listNetns } from './netns.ts';
import { cmdlineOf } from './processes.ts';
import { readRecord, repoRoot } from './record.ts';
import { ensureBuilt, uniqueLabName } from './testing.ts';

const name = uniqueLabName('kube');
const dir = mkdtempSync(join(tmpdir(), 'isthmus-kube-test-'));
const configFile = join(dir, 'lab.yaml');
writeFileSync(
  configFile,
  `name: ${name}
encryption: wireguard
clusters:
- {name: c1, id: 1, podCIDR: 10.1.0.0/16, nodes: 2}
- {name: c2, id: 2, podCIDR: 10.2.0.0/16, nodes: 1}
`,
);
const plan = planLab({
  name,
  clusters: [
    { name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 },
    { name: 'c2', id: 2, podCIDR: '10.2.0.0/16', nodes: 1 },
  ],
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `isthmus ARGS` as a user runs it (bounded: 4 minutes). */
function isthmus(args: string[], stdin = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot(), 'cli/main.ts'), ...args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(stdin);
  });
}

const kubectl = (args: string[], stdin = '') =>
  isthmus(['lab', 'kubectl', '--name', name, 'c1', '--', ...args], stdin);

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface PodJson {
  metadata: { name: string };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    hostIP?: string;
    conditions?: { type: string; status: string }[];
  };
}

async function getPod(ns: string, pod: string): Promise<PodJson | undefined> {
  const r = await kubectl(['get', 'pod', '-n', ns, pod, '-o', 'json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as PodJson) : undefined;
}

const isRunning = (p: PodJson | undefined): boolean =>
  p?.status.phase === 'Running' && !!p.status.podIP;

/** Waits until the pod runs, polling the API with plain kubectl (one `isthmus` start per poll
 * costs seconds of CPU on a busy machine), then reads it through `isthmus lab kubectl`. */
async function runningPod(ns: string, pod: string): Promise<PodJson> {
  await until(`pod ${ns}/${pod} Running`, async () => {
    const r = await kubectlCapture(plan, 'c1', ['get', 'pod', '-n', ns, pod, '-o', 'json']);
    return r.code === 0 && isRunning(JSON.parse(r.stdout) as PodJson) ? true : undefined;
  });
  const p = await getPod(ns, pod);
  if (!p || !isRunning(p))
    throw new Error(`pod ${ns}/${pod}: kubectl saw it running, isthmus lab kubectl does not`);
  return p;
}

const podYaml = (ns: string, pod: string, nodeName?: string) => `apiVersion: v1
kind: Pod
metadata: {name: ${pod}, namespace: ${ns}, labels: {app: ${pod}}}
spec:
  ${nodeName ? `nodeName: ${nodeName}` : 'restartPolicy: Always'}
  containers:
  - name: main
    image: echo
    ports: [{containerPort: 80, name: http}, {containerPort: 53, protocol: UDP}]
`;

test.before(async () => {
  await ensureBuilt();
});

test.after.always(async () => {
  await downLab(name);
  rmSync(dir, { recursive: true, force: true });
});

test.serial('lab up starts the lab in the background and returns once ready', async (t) => {
  const up = await isthmus(['lab', 'up', '--config', configFile]);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stdout, /control plane c1: API server ready/);
  t.regex(up.stdout, /encryption: wireguard between nodes/);
  t.regex(up.stdout, new RegExp(`lab ${name} is ready`));
  const record = readRecord(`${RUN_ROOT}/${name}`)!;
  t.true(record.ready);
  t.truthy(record.supervisorPid && cmdlineOf(record.supervisorPid)?.includes('supervise'));
  t.deepEqual(await rootFootprint(plan), []);

  const again = await isthmus(['lab', 'up', '--config', configFile]);
  t.not(again.code, 0);
  t.regex(again.stderr, /already exists/);
});

test.serial('lab status --output json has DESIGN.md shape and says ready', async (t) => {
  const r = await isthmus(['lab', 'status', '--name', name, '--output', 'json']);
  t.is(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  t.is(s.name, name);
  t.is(s.ready, true);
  t.is(s.underlay.netns, `${name}-underlay`);
  t.deepEqual(
    s.clusters.map((c: any) => [c.name, c.id, c.ready, c.nodes.length]),
    [
      ['c1', 1, true, 2],
      ['c2', 2, true, 1],
    ],
  );
  const n = s.clusters[0].nodes[0];
  t.deepEqual(
    { name: n.name, netns: n.netns, ip: n.ip, podCIDR: n.podCIDR, ready: n.ready },
    {
      name: 'c1-node1',
      netns: `${name}-c1-node1`,
      ip: plan.clusters[0]!.nodes[0]!.ip,
      podCIDR: '10.1.0.0/24',
      ready: true,
    },
  );
  t.deepEqual(s.clusters[0].pods, []);
  t.true(s.clusters[0].controlPlane.apiServer.ready);
  t.true(s.clusters[0].controlPlane.kubelet.ready);
});

test.serial(
  'every node is registered in its cluster API: InternalIP, podCIDR, Ready',
  async (t) => {
    const r = await kubectl(['get', 'nodes', '-o', 'json']);
    t.is(r.code, 0, r.stderr);
    const nodes = (JSON.parse(r.stdout) as { items: any[] }).items.map((n) => ({
      name: n.metadata.name,
      ip: n.status.addresses.find((a: any) => a.type === 'InternalIP')?.address,
      podCIDR: n.spec.podCIDR,
      ready: n.status.conditions.find((c: any) => c.type === 'Ready')?.status,
    }));
    t.deepEqual(
      nodes.sort((a, b) => a.name.localeCompare(b.name)),
      plan.clusters[0]!.nodes.map((n) => ({
        name: n.name,
        ip: n.ip,
        podCIDR: n.podCIDR,
        ready: 'True',
      })),
    );
  },
);

test.serial(
  'a pod applied with lab kubectl runs, reports its IP through status, and is reachable',
  async (t) => {
    const apply = await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: web}\n---\n${podYaml('web', 'server', 'c1-node1')}---\n${podYaml('web', 'client', 'c1-node2')}`,
    );
    t.is(apply.code, 0, apply.stderr);
    const server = await runningPod('web', 'server');
    const client = await runningPod('web', 'client');
    t.regex(server.status.podIP!, /^10\.1\.0\.\d+$/);
    t.regex(client.status.podIP!, /^10\.1\.1\.\d+$/);
    t.deepEqual(server.status.podIPs, [{ ip: server.status.podIP! }]);
    t.is(server.status.hostIP, plan.clusters[0]!.nodes[0]!.ip);
    t.is(server.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    t.true((await listNetns()).includes(`${name}-c1-web-server`));

    const probe = await isthmus([
      'lab',
      'probe',
      '--name',
      name,
      '--probe',
      '80/TCP',
      '--probe',
      '53/UDP',
      '--output',
      'json',
    ]);
    t.is(probe.code, 0, probe.stderr);
    const rows = JSON.parse(probe.stdout).probes;
    t.deepEqual(Object.keys(rows[0]), ['from', 'to', 'port', 'protocol', 'allowed', 'reason']);
    t.deepEqual(
      rows.map((r: any) => `${r.from}>${r.to} ${r.port}/${r.protocol} ${r.allowed}`).sort(),
      [
        'c1/web/client>c1/web/server 53/UDP true',
        'c1/web/client>c1/web/server 80/TCP true',
        'c1/web/server>c1/web/client 53/UDP true',
        'c1/web/server>c1/web/client 80/TCP true',
      ],
    );
    const status = JSON.parse(
      (await isthmus(['lab', 'status', '--name', name, '--output', 'json'])).stdout,
    );
    t.deepEqual(status.clusters[0].pods.map((p: any) => [p.name, p.node, p.ip]).sort(), [
      ['web/client', 'c1-node2', client.status.podIP],
      ['web/server', 'c1-node1', server.status.podIP],
    ]);
  },
);

test.serial('kubectl delete removes the pod: namespace and veth gone', async (t) => {
  const vethsBefore = await nodeVeths(0);
  t.is(vethsBefore.length, 1);
  const del = await kubectl(['delete', 'pod', '-n', 'web', 'server']);
  t.is(del.code, 0, del.stderr);
  await until('pod namespace gone', async () =>
    (await listNetns()).includes(`${name}-c1-web-server`) ? undefined : true,
  );
  await until('veth gone', async () => ((await nodeVeths(0)).length === 0 ? true : undefined));
  const status = JSON.parse(
    (await isthmus(['lab', 'status', '--name', name, '--output', 'json'])).stdout,
  );
  t.deepEqual(
    status.clusters[0].pods.map((p: any) => p.name),
    ['web/client'],
  );
});

test.serial('pods without a node are scheduled across the cluster nodes', async (t) => {
  const yaml = ['a', 'b', 'c', 'd'].map((p) => podYaml('web', `spread-${p}`)).join('---\n');
  const apply = await kubectl(['apply', '-f', '-'], yaml);
  t.is(apply.code, 0, apply.stderr);
  const pods = await Promise.all(['a', 'b', 'c', 'd'].map((p) => runningPod('web', `spread-${p}`)));
  const perNode = new Map<string, number>();
  for (const p of pods) perNode.set(p.spec.nodeName!, (perNode.get(p.spec.nodeName!) ?? 0) + 1);
  // client already runs on c1-node2: 5 pods over 2 nodes end 3 + 2 at worst
  t.deepEqual([...perNode.keys()].sort(), ['c1-node1', 'c1-node2']);
  t.true(Math.abs((perNode.get('c1-node1') ?? 0) - (perNode.get('c1-node2') ?? 0)) <= 2);
});

test.serial('a dead kubelet is started again by the supervisor and adopts its pods', async (t) => {
  const record = readRecord(`${RUN_ROOT}/${name}`)!;
  const old = record.kubelets!.find((k) => k.cluster === 'c1')!.pid;
  const before = await runningPod('web', 'client');
  process.kill(old, 'SIGKILL');
  const revived = await until('kubelet revived', async () => {
    const pid = readRecord(`${RUN_ROOT}/${name}`)?.kubelets?.find((k) => k.cluster === 'c1')?.pid;
    return pid && pid !== old && cmdlineOf(pid) ? pid : undefined;
  });
  t.not(revived, old);
  const readyLines = () =>
    readFileSync(join(plan.runDir, 'c1-cp', 'kubelet.log'), 'utf8').split('"event":"ready"')
      .length - 1;
  await until('revived kubelet ready', async () => (readyLines() === 2 ? true : undefined));
  const after = await runningPod('web', 'client');
  t.is(after.status.podIP, before.status.podIP); // adopted, not recreated
  const del = await kubectl(['delete', 'pod', '-n', 'web', 'client']);
  t.is(del.code, 0, del.stderr);
  await until('adopted pod removed', async () =>
    (await listNetns()).includes(`${name}-c1-web-client`) ? undefined : true,
  );
  t.pass();
});

test.serial('lab down removes everything even after the supervisor died', async (t) => {
  const record = readRecord(`${RUN_ROOT}/${name}`)!;
  process.kill(record.supervisorPid!, 'SIGKILL');
  await until('supervisor gone', async () => (cmdlineOf(record.supervisorPid!) ? undefined : true));
  const down = await isthmus(['lab', 'down', '--name', name]);
  t.is(down.code, 0, down.stderr);
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(plan), []);
  const status = await isthmus(['lab', 'status', '--name', name]);
  t.not(status.code, 0);
});

async function nodeVeths(i: number): Promise<string[]> {
  const r = await runCommand([
    'ip',
    '-n',
    plan.clusters[0]!.nodes[i]!.netns,
    '-json',
    'link',
    'show',
  ]);
  return (JSON.parse(r.stdout) as { ifname: string }[])
    .map((l) => l.ifname)
    .filter((n) => n.startsWith('lxc'));
}
