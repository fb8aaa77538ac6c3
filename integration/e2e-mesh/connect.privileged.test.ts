// `isthmus clustermesh disconnect|connect --context A --destination-context B` on a 2-cluster lab,
// the real-cluster path: the CLI runs inside c1's control-plane namespace with nothing but a
// kubeconfig of two contexts (the lab installed kube-system's ConfigMap isthmus-clustermesh and
// Secrets cilium-ca and clustermesh-apiserver-admin-cert as an install would), and the Secret
// reaches the agents through the lab's Secret "mount" (no lab hook in the CLI's path).
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { remoteReaderUser, verifyBundle } from '../../certs/index.ts';
import { clustermeshStatus, remoteReady } from '../../cli/clustermesh.ts';
import { runCommand } from '../../agent/routing/command.ts';
import { kubectl, podYaml, probeRows, until, waitForPods } from '../e2e-policy/support.ts';
import { kubectlCapture } from '../lab/kubectl.ts';
import { downLab, Lab } from '../lab/lab.ts';
import { labLeftovers } from '../lab/leftovers.ts';
import { bundleDirOf, labKubeconfigPath, meshPaths } from '../lab/mesh.ts';
import type { LabPod } from '../lab/record.ts';
import { repoRoot } from '../lab/record.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from '../lab/testing.ts';
import { waitForMesh } from './support.ts';

const name = uniqueLabName('econn');
const plan = twoClusterPlan(name, 1);
const cluster = (n: string) => plan.clusters.find((c) => c.name === n)!;
const PORTS = [{ port: 80, protocol: 'TCP' as const }];
let lab: Lab | undefined;
let pods: LabPod[] = [];

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { datapath: 'bpf', fullPassIntervalMs: 2000 });
  const nsDoc = (ns: string) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: "${ns}"}\n---\n`;
  const pod = (ns: string, n: string, node: string) =>
    podYaml(ns, n, { app: n }, [{ port: 80, protocol: 'TCP' }], node);
  await kubectl(plan, ['apply', '-f', '-'], nsDoc('a') + pod('a', 'x', 'c1-node1'), 'c1');
  await kubectl(plan, ['apply', '-f', '-'], nsDoc('b') + pod('b', 'p', 'c2-node1'), 'c2');
  pods = await waitForPods(plan, ['c1/a/x', 'c2/b/p']);
  await waitForMesh(plan, pods);
});

test.after.always(async () => {
  await downLab(name);
});

/** The real command line, run inside c1's control-plane namespace (as an operator's host). */
async function isthmusInCluster(args: string[]) {
  return runCommand([
    'nsenter',
    `--net=/run/netns/${cluster('c1').controlPlane.netns}`,
    '--',
    process.execPath,
    '--import',
    'tsx',
    join(repoRoot(), 'cli/main.ts'),
    'clustermesh',
    ...args,
    '--kubeconfig',
    labKubeconfigPath(plan),
  ]);
}

const secretData = async (c: string): Promise<Record<string, string> | undefined> => {
  const r = await kubectlCapture(
    plan,
    c,
    ['get', 'secret', '-n', 'kube-system', 'cilium-clustermesh', '-o', 'json'],
    '',
  );
  return r.code === 0 ? (JSON.parse(r.stdout) as { data: Record<string, string> }).data : undefined;
};

/** A client with `of`'s reader certificate (from the bundle on its node) on `on`'s mesh etcd. */
async function readerOf(of: string, on: string): Promise<Etcd3> {
  const p = meshPaths(plan, cluster(on));
  const bundle = readFileSync(join(bundleDirOf(cluster(of).nodes[0]!), on), 'utf8');
  const b = await verifyBundle(bundle, readFileSync(p.caFile, 'utf8'));
  if (!b.ok) throw new Error(b.error.detail);
  if (b.value.user !== remoteReaderUser(of)) throw new Error(`bundle user ${b.value.user}`);
  return new Etcd3({
    hosts: `unix://${p.etcdSocket}`,
    credentials: {
      rootCertificate: Buffer.from(b.value.caPem),
      certChain: Buffer.from(b.value.certPem),
      privateKey: Buffer.from(b.value.keyPem),
    },
    grpcOptions: { 'grpc.ssl_target_name_override': p.serverName },
  });
}

const allRemotes = async (want: 'none' | 'ready') => {
  const nodes = await clustermeshStatus({ lab: name });
  return nodes.every((n) =>
    want === 'none' ? n.remotes.length === 0 : n.remotes.length === 1 && remoteReady(n.remotes[0]!),
  );
};

test.serial(
  'lab up installs the clustermesh objects of a real install in kube-system',
  async (t) => {
    for (const c of plan.clusters) {
      const get = (kind: string, n: string) =>
        kubectlCapture(plan, c.name, ['get', kind, '-n', 'kube-system', n, '-o', 'json'], '');
      const cm = await get('configmap', 'isthmus-clustermesh');
      t.is(cm.code, 0, cm.stderr);
      const data = (JSON.parse(cm.stdout) as { data: Record<string, string> }).data;
      t.is(data['cluster-name'], c.name);
      t.is(data['cluster-id'], String(c.id));
      t.is(data.endpoints, meshPaths(plan, c).endpoint);
      for (const s of ['cilium-ca', 'clustermesh-apiserver-admin-cert'])
        t.is((await get('secret', s)).code, 0, `${c.name}: Secret ${s}`);
    }
  },
);

test.serial('wrong contexts are refused with a clear message, nothing changed', async (t) => {
  const same = await isthmusInCluster([
    'connect',
    '--context',
    'c1',
    '--destination-context',
    'c1',
  ]);
  t.is(same.code, 1);
  t.regex(same.stderr, /same cluster c1/);
  const unknown = await isthmusInCluster([
    'connect',
    '--context',
    'nope',
    '--destination-context',
    'c2',
  ]);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /context nope not found .* it has: c1, c2/);
  t.truthy((await secretData('c1'))?.c2, 'c1 still holds the bundle of c2');
});

test.serial(
  'disconnect by contexts: Secrets emptied, reader revoked, agents drain; again: not connected',
  async (t) => {
    const readers = [await readerOf('c1', 'c2'), await readerOf('c2', 'c1')] as const;
    t.teardown(() => readers.forEach((r) => r.close()));
    t.truthy(await readers[0].get('cilium/cluster-config/c2').string(), 'c1 reads c2 before');
    t.truthy(await readers[1].get('cilium/cluster-config/c1').string(), 'c2 reads c1 before');
    const off = await isthmusInCluster([
      'disconnect',
      '--context',
      'c1',
      '--destination-context',
      'c2',
    ]);
    t.is(off.code, 0, off.stderr);
    t.regex(off.stdout, /etcd user remote-c1 revoked/);
    t.regex(off.stdout, /etcd user remote-c2 revoked/);
    await t.throwsAsync(readers[0].get('cilium/cluster-config/c2').string(), undefined, 'revoked');
    await t.throwsAsync(readers[1].get('cilium/cluster-config/c1').string(), undefined, 'revoked');
    t.is(await secretData('c1'), undefined, 'c1 Secret gone');
    t.is(await secretData('c2'), undefined, 'c2 Secret gone');
    await until('the Secret mount removes the bundle files', () =>
      plan.clusters.every((c) =>
        c.nodes.every((n) => !existsSync(join(bundleDirOf(n), c.name === 'c1' ? 'c2' : 'c1'))),
      )
        ? true
        : undefined,
    );
    await until(
      'every agent drained its remote',
      async () => ((await allRemotes('none')) ? true : undefined),
      30_000,
    );
    const again = await isthmusInCluster([
      'disconnect',
      '--context',
      'c1',
      '--destination-context',
      'c2',
    ]);
    t.is(again.code, 0, again.stderr);
    t.regex(again.stdout, /not connected/);
  },
);

test.serial(
  'connect by contexts: agents reconnect, a cross-cluster probe passes; twice is fine',
  async (t) => {
    for (let i = 0; i < 2; i++) {
      const on = await isthmusInCluster([
        'connect',
        '--context',
        'c1',
        '--destination-context',
        'c2',
      ]);
      t.is(on.code, 0, on.stderr);
      t.regex(on.stdout, /c1: Secret kube-system\/cilium-clustermesh holds the bundle of c2/);
    }
    t.truthy((await secretData('c1'))?.c2);
    t.truthy((await secretData('c2'))?.c1);
    await until(
      'every agent has its remote ready',
      async () => ((await allRemotes('ready')) ? true : undefined),
      60_000,
    );
    await waitForMesh(plan, pods);
    const rows = await probeRows(pods, PORTS, { timeoutMs: 400, confirmRetries: 1 });
    t.deepEqual(
      rows.map((r) => `${r.from} -> ${r.to} ${r.allowed}`),
      ['c1/a/x -> c2/b/p true', 'c2/b/p -> c1/a/x true'],
    );
    const reader = await readerOf('c1', 'c2');
    t.teardown(() => reader.close());
    t.truthy(await reader.get('cilium/cluster-config/c2').string(), 'the new reader reads');
  },
);

test.serial('teardown leaves nothing behind', async (t) => {
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
});
