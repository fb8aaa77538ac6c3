// ClusterMesh end to end on ONE lab of 2 clusters x 2 nodes that connects its mesh by itself:
// cross-cluster allow and deny in both directions with real packets, equal to `policy
// reachability` with both clusters' objects; a remote pod created becomes reachable as policy
// allows, a deleted one leaves every other-cluster ipcache; a mesh etcd outage keeps established
// connections and state, status says disconnected, the resync applies what changed meanwhile and
// deletes exactly the removed keys from the BPF map; an API server restart deletes nothing;
// `clustermesh disconnect` revokes the reader. Outage length: ISTHMUS_MESH_OUTAGE_MS (default 2000).
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { remoteReaderUser, verifyBundle } from '../../certs/index.ts';
import { clustermeshStatus, remoteReady } from '../../cli/clustermesh.ts';
import {
  converge,
  kubectl,
  podYaml,
  probeRows,
  statuses,
  until,
  waitForPods,
} from '../e2e-policy/support.ts';
import { kubectlCapture } from '../lab/kubectl.ts';
import { downLab, Lab } from '../lab/lab.ts';
import { labLeftovers } from '../lab/leftovers.ts';
import { meshPaths, startMeshApiServer, startMeshEtcd, stopMeshProcess } from '../lab/mesh.ts';
import type { LabPod } from '../lab/record.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from '../lab/testing.ts';
import { repoRoot } from '../lab/record.ts';
import { runCommand } from '../../agent/routing/command.ts';
import { iperfStream, meshEngineRows, nodeIpcache, rowKey, waitForMesh } from './support.ts';

const name = uniqueLabName('emesh');
const plan = twoClusterPlan(name, 2);
const OUTAGE_MS = Number(process.env.ISTHMUS_MESH_OUTAGE_MS ?? 2000);
const PORTS = [{ port: 80, protocol: 'TCP' as const }];
const PROBE = { timeoutMs: 400, confirmRetries: 1 };
const cluster = (n: string) => plan.clusters.find((c) => c.name === n)!;
let lab: Lab | undefined;
let pods: LabPod[] = [];

const nsDoc = (ns: string) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: "${ns}"}\n---\n`;
const pod = (ns: string, n: string, app: string, node: string) =>
  podYaml(ns, n, { app }, [{ port: 80, protocol: 'TCP', name: 'http' }], node);

// c2's p admits app=x of c1 only; c1's y admits app=q of c2 only (selectors name the cluster).
const C2_POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p-from-c1-x, namespace: b}
spec:
  endpointSelector: {matchLabels: {app: "p"}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: "x", io.cilium.k8s.policy.cluster: c1, io.kubernetes.pod.namespace: a}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`;
const C1_POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: y-from-c2-q, namespace: a}
spec:
  endpointSelector: {matchLabels: {app: "y"}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: "q", io.cilium.k8s.policy.cluster: c2, io.kubernetes.pod.namespace: b}}]
`;

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { datapath: 'bpf', fullPassIntervalMs: 2000 });
  await kubectl(
    plan,
    ['apply', '-f', '-'],
    nsDoc('a') + pod('a', 'x', 'x', 'c1-node1') + pod('a', 'y', 'y', 'c1-node2') + C1_POLICY,
    'c1',
  );
  await kubectl(
    plan,
    ['apply', '-f', '-'],
    nsDoc('b') + pod('b', 'p', 'p', 'c2-node1') + pod('b', 'q', 'q', 'c2-node2') + C2_POLICY,
    'c2',
  );
  pods = await waitForPods(plan, ['c1/a/x', 'c1/a/y', 'c2/b/p', 'c2/b/q']);
  await waitForMesh(plan, pods);
});

test.after.always(async () => {
  await downLab(name);
});

/** The real command line: `isthmus clustermesh ...` against this lab. */
async function isthmus(args: string[]) {
  const main = join(repoRoot(), 'cli/main.ts');
  return runCommand([process.execPath, '--import', 'tsx', main, 'clustermesh', ...args]);
}

const secretExists = async (c: string) =>
  (await kubectlCapture(plan, c, ['get', 'secret', '-n', 'kube-system', 'cilium-clustermesh'], ''))
    .code === 0;

const byName = (key: string) => pods.find((p) => `${p.cluster}/${p.namespace}/${p.name}` === key)!;

async function agreeWithEngine(t: import('ava').ExecutionContext, set: LabPod[]) {
  await converge(plan);
  const packets = await probeRows(set, PORTS, PROBE);
  const engine = await meshEngineRows(plan, set, PORTS);
  t.deepEqual(
    packets.map((r) => `${rowKey(r)} ${r.allowed}`),
    engine.map((r) => `${rowKey(r)} ${r.allowed}`),
  );
  return new Map(packets.map((r) => [`${r.from} -> ${r.to}`, r.allowed]));
}

test.serial(
  'clustermesh status: every remote connected, synced, reachable through the datapath',
  async (t) => {
    const nodes = await clustermeshStatus({ lab: name });
    t.is(nodes.length, 4);
    const cli = await isthmus(['status', '--lab', name, '--output', 'json']);
    t.is(cli.code, 0, cli.stderr);
    t.is((JSON.parse(cli.stdout) as { nodes: unknown[] }).nodes.length, 4);
    for (const n of nodes) {
      t.true(n.configured, n.node);
      t.is(n.remotes.length, 1, n.node);
      const r = n.remotes[0]!;
      t.is(r.cluster, n.cluster === 'c1' ? 'c2' : 'c1');
      t.true(remoteReady(r), `${n.node}: ${r.state} ${r.reason} ${JSON.stringify(r.datapath)}`);
      t.is(r.counts.nodes, 2);
      t.true(r.counts.endpoints >= 2, `${n.node} sees ${r.counts.endpoints} remote endpoints`);
    }
  },
);

test.serial(
  'cross-cluster allow and deny in both directions equal policy reachability',
  async (t) => {
    const verdict = await agreeWithEngine(t, pods);
    t.true(verdict.get('c1/a/x -> c2/b/p'), 'c1 x -> c2 p allowed (selected across clusters)');
    t.false(verdict.get('c1/a/y -> c2/b/p'), 'c1 y -> c2 p denied');
    t.true(verdict.get('c2/b/q -> c1/a/y'), 'c2 q -> c1 y allowed');
    t.false(verdict.get('c2/b/p -> c1/a/y'), 'c2 p -> c1 y denied');
    t.false(verdict.get('c2/b/q -> c2/b/p'), 'c2 q -> c2 p denied: the selector names c1 only');
  },
);

test.serial(
  'a remote pod created becomes reachable as policy allows; deleted, it leaves every ipcache',
  async (t) => {
    await kubectl(plan, ['apply', '-f', '-'], pod('b', 'r', 'p', 'c2-node2'), 'c2');
    const [r] = await waitForPods(plan, ['c2/b/r']);
    const all = [...pods, r!];
    await waitForMesh(plan, all);
    const verdict = await agreeWithEngine(t, [byName('c1/a/x'), byName('c1/a/y'), r!]);
    t.true(verdict.get('c1/a/x -> c2/b/r'));
    t.false(verdict.get('c1/a/y -> c2/b/r'));
    await kubectl(plan, ['delete', 'pod', '-n', 'b', 'r', '--wait=false'], '', 'c2');
    await waitForMesh(plan, pods, [r!.ip]);
    for (const node of cluster('c1').nodes)
      t.false(nodeIpcache(node).has(`${r!.ip}/32`), `${node.name} still maps ${r!.ip}`);
  },
);

test.serial(
  'mesh etcd outage: connections and state stay; resync deletes exactly the removed keys',
  async (t) => {
    const c1node = cluster('c1').nodes[0]!;
    const stream = await iperfStream(
      byName('c1/a/x'),
      byName('c2/b/q'),
      Math.ceil(OUTAGE_MS / 1000) + 4,
    );
    t.teardown(() => stream.stop());
    await new Promise((r) => setTimeout(r, 500));
    await stopMeshProcess(plan, cluster('c2'), 'etcd');
    const down = await until(
      'c1 sees c2 disconnected',
      async () => {
        const s = await clustermeshStatus({ lab: name, node: c1node.name });
        const r = s[0]!.remotes[0]!;
        return r.connected ? undefined : r;
      },
      20_000,
    );
    t.is(down.state, 'disconnected');
    t.false(remoteReady(down));
    const cli = await isthmus(['status', '--lab', name, '--node', c1node.name]);
    t.is(cli.code, 3, 'exit code 3 while a remote is not ready');
    t.regex(cli.stdout, /c2 \(id 2\): disconnected/);
    // changes in c2 while c1 cannot see them
    const before = nodeIpcache(c1node);
    await kubectl(plan, ['apply', '-f', '-'], pod('b', 's', 's', 'c2-node1'), 'c2');
    await kubectl(plan, ['delete', 'pod', '-n', 'b', 'p', '--wait=false'], '', 'c2');
    const [s] = await waitForPods(plan, ['c2/b/s']);
    const pIp = byName('c2/b/p').ip;
    await until('p gone from c2', async () => {
      const out = await kubectl(
        plan,
        ['get', 'ciliumendpoints', '-n', 'b', '-o', 'name'],
        '',
        'c2',
      );
      return out.includes('/p\n') ? undefined : true;
    });
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - 1000)));
    t.true(nodeIpcache(c1node).has(`${pIp}/32`), 'nothing removed while disconnected');
    // watch the map while the etcd returns
    const deleted = new Set<string>();
    let last = nodeIpcache(c1node);
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = nodeIpcache(c1node);
        for (const k of last.keys()) if (!now.has(k)) deleted.add(k);
        last = now;
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const etcd = await startMeshEtcd(plan, cluster('c2'));
    t.truthy(etcd.pid);
    const remaining = pods.filter((p) => p.name !== 'p');
    await waitForMesh(plan, [...remaining, s!], [pIp]);
    await new Promise((r) => setTimeout(r, 500));
    watching = false;
    await watcher;
    t.deepEqual([...deleted], [`${pIp}/32`], 'the only BPF ipcache delete is the removed pod');
    for (const k of before.keys()) if (k !== `${pIp}/32`) t.true(last.has(k), `${k} kept`);
    t.is(last.get(`${s!.ip}/32`) !== undefined, true, 'the pod created meanwhile appears');
    const report = JSON.parse((await stream.result).stdout) as {
      end: { sum_received: { bytes: number; seconds: number } };
      error?: string;
    };
    t.is(report.error, undefined, 'the established cross-cluster connection kept working');
    t.true(report.end.sum_received.seconds >= Math.ceil(OUTAGE_MS / 1000) + 3);
    const up = await clustermeshStatus({ lab: name, node: c1node.name });
    t.true(remoteReady(up[0]!.remotes[0]!));
    pods = [...remaining, s!];
  },
);

test.serial('restarting a clustermesh API server deletes nothing on remote agents', async (t) => {
  const counts = async () => {
    const all = await statuses(plan);
    return cluster('c1').nodes.map((n) => all.get(n.name)!.clustermesh!.applied.c2!);
  };
  const before = await counts();
  await stopMeshProcess(plan, cluster('c2'), 'server');
  await startMeshApiServer(plan, cluster('c2'));
  await new Promise((r) => setTimeout(r, 2000));
  const after = await counts();
  for (const [i, a] of after.entries())
    for (const kind of ['identities', 'ipcache', 'nodes', 'services'] as const)
      t.is(a[kind].delete, before[i]![kind].delete, `${kind} deletes on c1-node${i + 1}`);
});

test.serial(
  'disconnect: the revoked reader cannot read; connect again restores the mesh',
  async (t) => {
    const p = meshPaths(plan, cluster('c2'));
    {
      // a client with c1's reader certificate on c2's etcd: issued by connect, read from a bundle
      const bundleFile = join(plan.clusters[0]!.nodes[0]!.dir, 'clustermesh', 'c2');
      const bundle = readFileSync(bundleFile, 'utf8');
      const b = await verifyBundle(bundle, readFileSync(p.caFile, 'utf8'));
      if (!b.ok) throw new Error(b.error.detail);
      const reader = new Etcd3({
        hosts: `unix://${p.etcdSocket}`,
        credentials: {
          rootCertificate: Buffer.from(b.value.caPem),
          certChain: Buffer.from(b.value.certPem),
          privateKey: Buffer.from(b.value.keyPem),
        },
        grpcOptions: { 'grpc.ssl_target_name_override': p.serverName },
      });
      t.teardown(() => reader.close());
      t.truthy(await reader.get('cilium/cluster-config/c2').string(), 'the reader reads before');
      t.is(b.value.user, remoteReaderUser('c1'));
      const off = await isthmus(['disconnect', 'c1', 'c2', '--lab', name]);
      t.is(off.code, 0, off.stderr);
      await t.throwsAsync(reader.get('cilium/cluster-config/c2').string());
      t.false(await secretExists('c1'), 'disconnect removed the Secret in c1');
      await until(
        'c1 agents drop c2',
        async () => {
          const s = await clustermeshStatus({ lab: name, node: 'c1-node1' });
          return s[0]!.remotes.length === 0 ? true : undefined;
        },
        20_000,
      );
      const on = await isthmus(['connect', 'c1', 'c2', '--lab', name]);
      t.is(on.code, 0, on.stderr);
      await waitForMesh(plan, pods);
      t.true(await secretExists('c1'), 'connect wrote the Secret in c1');
    }
  },
);

test.serial('a restarted agent keeps remote pods in its BPF ipcache throughout', async (t) => {
  const node = cluster('c1').nodes[0]!;
  const keys = pods.filter((p) => p.cluster === 'c2').map((p) => `${p.ip}/32`);
  const missing = new Set<string>();
  let polls = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const map = nodeIpcache(node);
      for (const k of keys) if (!map.has(k)) missing.add(k);
      polls++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await lab!.restartAgent(node.name);
  await waitForMesh(plan, pods);
  watching = false;
  await watcher;
  t.true(polls > 50, `${polls} map reads`);
  t.deepEqual([...missing], [], 'no remote row left the map during the restart');
});

test.serial('teardown leaves nothing behind', async (t) => {
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
});
