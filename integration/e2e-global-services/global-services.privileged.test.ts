// Global services end to end on ONE lab of 2 clusters x 2 nodes (kernel datapath, mesh connected
// by the lab): the same Service gsvc/echo in both clusters, annotated global. Connections from a
// pod to its cluster's ClusterIP are counted per cluster by the echo's "whoami" answer: spread
// with affinity none, local only with local, failover to the other cluster when the local
// backends go and back when they return, shared=false in c2 hides c2's backends from c1 only,
// a long-lived connection keeps its backend, policy after translation, and withdrawal of a
// disconnected cluster's backends after the agents' clustermesh.serviceWithdrawalMs.
//
// Policy (decided): a client allowed to the backend identity in c2 but not in c1 gets answers
// from c2's backends only; a connection balanced to a c1 backend is dropped (the client sees a
// timeout) and its backend forgotten, so a retry is balanced again (agent/services/README.md).
import test from 'ava';
import { Lab, downLab } from '../lab/lab.ts';
import { labLeftovers } from '../lab/leftovers.ts';
import { startMeshEtcd, stopMeshProcess } from '../lab/mesh.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from '../lab/testing.ts';
import type { LabPod } from '../lab/record.ts';
import { kubectl, podYaml, policiesInForce, waitForPods } from '../e2e-policy/support.ts';
import { ECHO_PORTS } from '../e2e-services/support.ts';
import { netTool, type NetToolLine } from '../lab/net-tool.ts';
import {
  NS,
  echoView,
  globalServiceYaml,
  inUse,
  perCluster,
  waitForInUse,
  who,
} from './support.ts';

const WITHDRAWAL_MS = 8000;
const name = uniqueLabName('egsvc');
const plan = twoClusterPlan(name, 2);
const cluster = (n: string) => plan.clusters.find((c) => c.name === n)!;
const nodeOf = (c: string, i: number) => cluster(c).nodes[i % 2]!.name;
const pods = new Map<string, LabPod>();
const vip: Record<string, string> = {};
const ips = (c: string) =>
  [...pods.values()].filter((p) => p.cluster === c && p.name.startsWith('echo')).map((p) => p.ip);

const echoPod = (c: string, n: string, i: number) =>
  podYaml(NS, n, { app: 'echo' }, ECHO_PORTS, nodeOf(c, i));

async function addEcho(c: string, names: string[]): Promise<void> {
  await kubectl(plan, ['apply', '-f', '-'], names.map((n, i) => echoPod(c, n, i)).join(''), c);
  const up = await waitForPods(
    plan,
    names.map((n) => `${c}/${NS}/${n}`),
  );
  up.forEach((p) => pods.set(`${c}/${p.name}`, p));
}

async function removeEcho(c: string, names: string[]): Promise<void> {
  await kubectl(plan, ['delete', 'pod', '-n', NS, ...names, '--wait=false'], '', c);
  names.forEach((n) => pods.delete(`${c}/${n}`));
}

const setAnnotations = (c: string, annotations: Record<string, string>) =>
  kubectl(plan, ['apply', '-f', '-'], globalServiceYaml(annotations), c);

test.before(async () => {
  await ensureBuilt();
  await Lab.up(plan, {
    datapath: 'bpf',
    fullPassIntervalMs: 2000,
    meshServiceWithdrawalMs: WITHDRAWAL_MS,
  });
  for (const c of ['c1', 'c2']) {
    const yaml =
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n---\n` +
      podYaml(NS, 'client', { app: 'client' }, [], nodeOf(c, 0)) +
      globalServiceYaml({});
    await kubectl(plan, ['apply', '-f', '-'], yaml, c);
    const [client] = await waitForPods(plan, [`${c}/${NS}/client`]);
    pods.set(`${c}/client`, client!);
    vip[c] = JSON.parse(
      await kubectl(plan, ['get', 'service', '-n', NS, 'echo', '-o', 'json'], '', c),
    ).spec.clusterIP;
    await addEcho(c, ['echo-1', 'echo-2']);
  }
  const all = [...ips('c1'), ...ips('c2')];
  await waitForInUse(name, 'c1', all);
  await waitForInUse(name, 'c2', all);
});

test.after.always(async () => {
  await downLab(name);
  const left = await labLeftovers(name);
  if (left.length > 0) throw new Error(`lab ${name} left: ${left.join(', ')}`);
});

const client = (c: string) => pods.get(`${c}/client`)!;

test.serial('affinity none: 200 connections from one pod land in both clusters', async (t) => {
  const r = await who(client('c1'), vip.c1!, 200);
  t.deepEqual(r.errors, {});
  const per = perCluster(r);
  t.is(per.c1 + per.c2, 200, JSON.stringify(r.counts));
  t.true(per.c1 >= 50 && per.c2 >= 50, `uneven: ${JSON.stringify(per)}`);
});

test.serial(
  'a long-lived connection stays on its backend while backends come and go in both clusters',
  async (t) => {
    const stream = netTool(
      client('c1').netnsPath,
      ['tcp-who-stream', vip.c1!, '80', '10', '0.2'],
      40_000,
    );
    await new Promise((r) => setTimeout(r, 800));
    await addEcho('c2', ['echo-3']);
    await addEcho('c1', ['echo-3']);
    await waitForInUse(name, 'c1', [...ips('c1'), ...ips('c2')]);
    await removeEcho('c2', ['echo-3']);
    await removeEcho('c1', ['echo-3']);
    await waitForInUse(name, 'c1', [...ips('c1'), ...ips('c2')]);
    const rounds = (await stream).filter((l: NetToolLine) => typeof l.seq === 'number');
    t.true(
      rounds.length >= 20 && rounds.every((l) => l.ok === true),
      JSON.stringify(rounds.at(-1)),
    );
    t.is(new Set(rounds.map((l) => l.who)).size, 1, 'the connection changed backend');
  },
);

test.serial(
  'affinity local: all local; local scaled to zero fails over to c2; scaled back goes local',
  async (t) => {
    await setAnnotations('c1', { 'service.cilium.io/affinity': 'local' });
    await waitForInUse(name, 'c1', ips('c1'));
    const local = perCluster(await who(client('c1'), vip.c1!, 60));
    t.deepEqual(local, { c1: 60, c2: 0, other: 0 });

    await removeEcho('c1', ['echo-1', 'echo-2']);
    const failover = await waitForInUse(name, 'c1', ips('c2'));
    t.log(`failover seen in c1's table after ${failover} ms`);
    const remote = await who(client('c1'), vip.c1!, 60);
    t.deepEqual(remote.errors, {});
    t.deepEqual(perCluster(remote), { c1: 0, c2: 60, other: 0 });

    await addEcho('c1', ['echo-1', 'echo-2']);
    await waitForInUse(name, 'c1', ips('c1'));
    t.deepEqual(perCluster(await who(client('c1'), vip.c1!, 60)), { c1: 60, c2: 0, other: 0 });
    await setAnnotations('c1', {});
    await waitForInUse(name, 'c1', [...ips('c1'), ...ips('c2')]);
  },
);

test.serial(
  "shared=false in c2: c1 never reaches c2's backends, c2 still reaches c1's",
  async (t) => {
    await setAnnotations('c2', { 'service.cilium.io/shared': 'false' });
    await waitForInUse(name, 'c1', ips('c1'));
    const fromC1 = await who(client('c1'), vip.c1!, 100);
    t.deepEqual(fromC1.errors, {});
    t.deepEqual(perCluster(fromC1), { c1: 100, c2: 0, other: 0 });
    t.deepEqual(inUse(await echoView(name, 'c2')), [...ips('c1'), ...ips('c2')].sort());
    const fromC2 = perCluster(await who(client('c2'), vip.c2!, 100));
    t.true(fromC2.c1 >= 20 && fromC2.c2 >= 20, JSON.stringify(fromC2));
    await setAnnotations('c2', {});
    await waitForInUse(name, 'c1', [...ips('c1'), ...ips('c2')]);
  },
);

test.serial(
  "policy: a client allowed to c2's echo identity only gets c2's backends or a drop",
  async (t) => {
    await kubectl(
      plan,
      ['apply', '-f', '-'],
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: client-to-c2-echo, namespace: ${NS}}
spec:
  endpointSelector: {matchLabels: {app: client}}
  egress:
  - toEndpoints: [{matchLabels: {app: echo, io.cilium.k8s.policy.cluster: c2}}]
`,
      'c1',
    );
    await policiesInForce(plan, 1, 'c1');
    const r = await who(client('c1'), vip.c1!, 30, 0.7);
    const per = perCluster(r);
    t.is(per.c1, 0, `a denied c1 backend answered: ${JSON.stringify(r.counts)}`);
    t.true(per.c2 > 0, JSON.stringify(r));
    t.is(per.c2 + (r.errors.TimeoutError ?? 0), 30, JSON.stringify(r.errors));
    t.true((r.errors.TimeoutError ?? 0) > 0, 'some connections were balanced to c1 and dropped');
    await kubectl(plan, ['delete', 'ciliumnetworkpolicy', '-n', NS, 'client-to-c2-echo'], '', 'c1');
    await policiesInForce(plan, 0, 'c1');
  },
);

test.serial(
  "c2's mesh etcd stopped: its backends stay until the withdrawal time, then traffic stays in c1",
  async (t) => {
    const both = [...ips('c1'), ...ips('c2')].sort();
    t.deepEqual(inUse(await echoView(name, 'c1')), both);
    await stopMeshProcess(plan, cluster('c2'), 'etcd');
    const lostAt = Date.now();
    let restarted = false;
    t.teardown(async () => {
      if (!restarted) await startMeshEtcd(plan, cluster('c2'));
    });
    await new Promise((r) => setTimeout(r, WITHDRAWAL_MS / 2));
    t.deepEqual(inUse(await echoView(name, 'c1')), both, 'kept before the withdrawal time');
    const kept = perCluster(await who(client('c1'), vip.c1!, 40));
    t.true(kept.c2 > 0, `c2 still served before the withdrawal: ${JSON.stringify(kept)}`);

    await waitForInUse(name, 'c1', ips('c1'), WITHDRAWAL_MS + 20_000);
    const withdrawnAfter = Date.now() - lostAt;
    t.true(withdrawnAfter >= WITHDRAWAL_MS, `withdrawn after ${withdrawnAfter} ms`);
    const moved = await who(client('c1'), vip.c1!, 60);
    t.deepEqual(moved.errors, {});
    t.deepEqual(perCluster(moved), { c1: 60, c2: 0, other: 0 });

    await startMeshEtcd(plan, cluster('c2'));
    restarted = true;
    await waitForInUse(name, 'c1', both, 60_000);
    t.true(perCluster(await who(client('c1'), vip.c1!, 60)).c2 > 0, 'c2 restored');
  },
);
