// The list/watch loop against the real lab API server and etcd: an API server restart and an
// etcd compaction (410 -> relist) while the watch is down yield exactly the changes made in the
// meantime, with no spurious delete/add for objects that did not change.
import test from 'ava';
import { Resource, type Change } from './resource.ts';
import { AgentWatches } from './watches.ts';
import { KubeClient } from './client.ts';
import { startKubectlControlPlane } from '../../integration/apiserver/test-support.ts';
import { startTestCluster, waitFor, sleep, type TestCluster } from './test-support.ts';
import type { KubeObject, ResourceDef } from './types.ts';

interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}
const ConfigMaps: ResourceDef<ConfigMap> = {
  apiVersion: 'v1',
  kind: 'ConfigMap',
  plural: 'configmaps',
  namespaced: true,
};
const NS: ResourceDef = {
  apiVersion: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
};

async function seed(c: TestCluster, n: number): Promise<void> {
  await c.writer.create(NS, { metadata: { name: 'w' } });
  for (let i = 0; i < n; i++) {
    await c.writer.create(ConfigMaps, {
      metadata: { name: `cm-${i}`, namespace: 'w' },
      data: { v: '0' },
    });
  }
}

/** Changes made while the primary API server is down. */
async function changeWhileDown(c: TestCluster): Promise<void> {
  const cm1 = await c.writer.get(ConfigMaps, 'cm-1', 'w');
  await c.writer.replace(ConfigMaps, { ...cm1, data: { v: '1' } });
  await c.writer.delete(ConfigMaps, 'cm-2', 'w');
  await c.writer.create(ConfigMaps, {
    metadata: { name: 'cm-new', namespace: 'w' },
    data: { v: 'n' },
  });
}

function startWatching(c: TestCluster) {
  const res = new Resource(c.api, ConfigMaps, { backoff: { baseMs: 50, maxMs: 400 } });
  const changes: Change<ConfigMap>[] = [];
  res.onChange((ch) => changes.push(ch));
  const handled: string[] = [];
  const queue = res.subscribe((key, obj) => {
    handled.push(`${key}:${obj ? obj.data?.['v'] : 'deleted'}`);
  });
  res.start();
  return { res, changes, handled, queue };
}

const summary = (changes: Change<ConfigMap>[]) => changes.map((c) => `${c.type} ${c.key}`).sort();

test.serial(
  'an API server restart: reconnect and resume with exactly the changes made meanwhile',
  async (t) => {
    const c = await startTestCluster(t);
    await seed(c, 20);
    const w = startWatching(c);
    t.teardown(() => w.res.stop());
    await w.res.synced;
    await w.queue.synced;
    t.is(w.res.list().length, 20);
    t.is(w.handled.length, 20);
    w.changes.length = 0;
    w.handled.length = 0;

    await c.stopPrimary();
    await changeWhileDown(c);
    await sleep(300); // the loop fails to reconnect a few times
    await c.startPrimary();

    await waitFor(() => w.res.get('w/cm-new') !== undefined && w.res.get('w/cm-2') === undefined);
    await sleep(500);
    t.deepEqual(summary(w.changes), ['delete w/cm-2', 'upsert w/cm-1', 'upsert w/cm-new']);
    await w.queue.idle();
    t.deepEqual(w.handled.sort(), ['w/cm-1:1', 'w/cm-2:deleted', 'w/cm-new:n']);
    t.true(w.res.stats.failures > 0, 'the outage was noticed');
    t.is(w.res.get('w/cm-1')?.data?.['v'], '1');

    // And the watch is alive afterwards.
    await c.writer.create(ConfigMaps, { metadata: { name: 'cm-after', namespace: 'w' } });
    await waitFor(() => w.res.get('w/cm-after') !== undefined);
  },
);

test.serial(
  'a compaction while disconnected: 410 Gone -> relist -> only real changes, pruned after the list',
  async (t) => {
    const c = await startTestCluster(t);
    await seed(c, 20);
    const w = startWatching(c);
    t.teardown(() => w.res.stop());
    await w.res.synced;
    const listsBefore = w.res.stats.lists;
    w.changes.length = 0;

    await c.stopPrimary();
    await changeWhileDown(c);
    // Churn elsewhere, then compact past the watcher's resourceVersion.
    for (let i = 0; i < 5; i++) await c.writer.create(NS, { metadata: { name: `other-${i}` } });
    await c.etcd.compact();
    await c.startPrimary();

    await waitFor(
      () => w.res.stats.gone > 0 && w.res.stats.lists > listsBefore,
      10_000,
      'relist after 410',
    );
    await waitFor(() => w.res.get('w/cm-2') === undefined);
    await sleep(500);
    t.deepEqual(summary(w.changes), ['delete w/cm-2', 'upsert w/cm-1', 'upsert w/cm-new']);
    t.is(w.res.list().length, 20);

    await c.writer.delete(ConfigMaps, 'cm-3', 'w');
    await waitFor(() => w.res.get('w/cm-3') === undefined);
  },
);

test.serial('stop() ends a loop that is backing off against a dead API server', async (t) => {
  const c = await startTestCluster(t);
  await c.stopPrimary();
  const res = new Resource(c.api, ConfigMaps, { backoff: { baseMs: 20, maxMs: 100 } });
  res.start();
  await sleep(300);
  t.false(res.isSynced);
  t.true(res.stats.failures >= 2, `retried ${res.stats.failures} times`);
  const t0 = Date.now();
  await res.stop();
  t.true(Date.now() - t0 < 1000);
});

test.serial(
  'AgentWatches: every resource the agent needs syncs; pods are this node’s only',
  async (t) => {
    const c = await startTestCluster(t, 'h6aw');
    await c.writer.create(NS, { metadata: { name: 'p' } });
    const Pods: ResourceDef = { apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true };
    const pod = (name: string, nodeName: string) => ({
      metadata: { name, namespace: 'p' },
      spec: { nodeName, containers: [{ name: 'c', image: 'x' }] },
    });
    await c.writer.create(Pods, pod('mine', 'node-a'));
    await c.writer.create(Pods, pod('theirs', 'node-b'));
    const watches = new AgentWatches(c.api, 'node-a', { backoff: { baseMs: 50, maxMs: 400 } });
    watches.start();
    t.teardown(() => watches.stop());
    await watches.synced();
    t.deepEqual(
      watches.resources.pods.list().map((p) => p.metadata.name),
      ['mine'],
    );
    t.is(watches.resources.namespaces.get('p')?.metadata.name, 'p');
    await c.writer.create(Pods, pod('mine-2', 'node-a'));
    await c.writer.create(Pods, pod('theirs-2', 'node-b'));
    await waitFor(() => watches.resources.pods.get('p/mine-2') !== undefined);
    await sleep(200);
    t.is(watches.resources.pods.get('p/theirs-2'), undefined);
    for (const r of Object.values(watches.resources)) t.true(r.isSynced, r.def.plural);
  },
);

test.serial(
  'the API server as its own process, restarted: no spurious events, watch alive',
  async (t) => {
    const cp = await startKubectlControlPlane(t);
    const api = new KubeClient(cp.kubeConfig);
    await api.create(NS, { metadata: { name: 'w' } });
    for (let i = 0; i < 10; i++) {
      await api.create(ConfigMaps, {
        metadata: { name: `cm-${i}`, namespace: 'w' },
        data: { v: '0' },
      });
    }
    const res = new Resource(api, ConfigMaps, { backoff: { baseMs: 50, maxMs: 400 } });
    const changes: Change<ConfigMap>[] = [];
    res.onChange((ch) => changes.push(ch));
    res.start();
    t.teardown(() => res.stop());
    await res.synced;
    changes.length = 0;
    const watchesBefore = res.stats.watches;
    await cp.restartApiServer();
    const cm = await api.get(ConfigMaps, 'cm-4', 'w');
    await api.replace(ConfigMaps, { ...cm, data: { v: '4' } });
    await api.create(ConfigMaps, { metadata: { name: 'cm-after', namespace: 'w' } });
    await waitFor(
      () => res.get('w/cm-after') !== undefined && res.get('w/cm-4')?.data?.['v'] === '4',
    );
    await sleep(300);
    t.deepEqual(summary(changes), ['upsert w/cm-4', 'upsert w/cm-after']);
    t.true(res.stats.watches > watchesBefore, 're-watched after the restart');
  },
);
