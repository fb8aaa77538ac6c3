// Watch semantics against a real etcd: resume from a resourceVersion, initial state, selector
// transitions, bookmarks, 410 Gone after compaction and the relist that recovers from it.
import test from 'ava';
import { CoreV1Api, Watch, makeInformer, type V1Pod } from '@kubernetes/client-node';
import { openWatch, startControlPlane, type ControlPlane } from './test-support.ts';

const pod = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels },
  spec: { containers: [{ name: 'c', image: 'busybox' }] },
});

async function withNamespace(cp: ControlPlane, name: string) {
  const r = await cp.request('POST', '/api/v1/namespaces', { metadata: { name } });
  if (r.status !== 201) throw new Error(`namespace create failed: ${JSON.stringify(r.body)}`);
}

async function createPod(
  cp: ControlPlane,
  ns: string,
  name: string,
  labels?: Record<string, string>,
) {
  const r = await cp.request('POST', `/api/v1/namespaces/${ns}/pods`, pod(name, labels));
  if (r.status !== 201) throw new Error(`pod create failed: ${JSON.stringify(r.body)}`);
  return r.body as { metadata: { resourceVersion: string } };
}

async function relabel(
  cp: ControlPlane,
  ns: string,
  name: string,
  labels: Record<string, string | null>,
) {
  const r = await cp.request(
    'PATCH',
    `/api/v1/namespaces/${ns}/pods/${name}`,
    { metadata: { labels } },
    'application/merge-patch+json',
  );
  if (r.status !== 200) throw new Error(`patch failed: ${JSON.stringify(r.body)}`);
  return r.body as { metadata: { resourceVersion: string } };
}

test.serial(
  'a watch resumes after a resourceVersion and sees every later change in order',
  async (t) => {
    const cp = await startControlPlane(t);
    await withNamespace(cp, 'w');
    const a = await createPod(cp, 'w', 'a');
    const a2 = await relabel(cp, 'w', 'a', { x: '1' });
    const b = await createPod(cp, 'w', 'b');
    await cp.request('DELETE', '/api/v1/namespaces/w/pods/a');

    const w = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/w/pods?watch=true&resourceVersion=${a.metadata.resourceVersion}`,
    );
    t.teardown(() => w.close());
    const events = await w.drain();
    t.deepEqual(
      events.map((e) => [e.type, e.object.metadata.name]),
      [
        ['MODIFIED', 'a'],
        ['ADDED', 'b'],
        ['DELETED', 'a'],
      ],
    );
    t.is(events[0]!.object.metadata.resourceVersion, a2.metadata.resourceVersion);
    t.is(events[1]!.object.metadata.resourceVersion, b.metadata.resourceVersion);
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    t.deepEqual(
      [...rvs].sort((x, y) => x - y),
      rvs,
    );

    // Live events keep flowing on the same stream.
    await createPod(cp, 'w', 'c');
    const live = await w.next();
    t.is(live.type, 'ADDED');
    t.is(live.object.metadata.name, 'c');
  },
);

test.serial('a watch without resourceVersion starts with the current state as ADDED', async (t) => {
  const cp = await startControlPlane(t);
  await withNamespace(cp, 'w');
  await createPod(cp, 'w', 'a');
  await createPod(cp, 'w', 'b');
  const w = await openWatch(cp.socketPath, '/api/v1/pods?watch=1');
  t.teardown(() => w.close());
  const initial = await w.drain();
  t.deepEqual(initial.map((e) => `${e.type}:${e.object.metadata.name}`).sort(), [
    'ADDED:a',
    'ADDED:b',
  ]);
});

test.serial(
  'selector watches turn objects entering and leaving the selection into ADDED and DELETED',
  async (t) => {
    const cp = await startControlPlane(t);
    await withNamespace(cp, 'w');
    const start = await createPod(cp, 'w', 'a', { app: 'web' });
    const w = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/w/pods?watch=true&labelSelector=${encodeURIComponent('app=web,tier notin (db)')}&resourceVersion=${start.metadata.resourceVersion}`,
    );
    t.teardown(() => w.close());
    await relabel(cp, 'w', 'a', { tier: 'db' }); // leaves the selection
    await relabel(cp, 'w', 'a', { note: 'x' }); // still outside: no event
    await relabel(cp, 'w', 'a', { tier: null }); // enters again
    await relabel(cp, 'w', 'a', { more: 'y' }); // stays inside
    await createPod(cp, 'w', 'other', { app: 'db' }); // never selected
    const events = await w.drain();
    t.deepEqual(
      events.map((e) => e.type),
      ['DELETED', 'ADDED', 'MODIFIED'],
    );
  },
);

test.serial('bookmarks carry the progress resourceVersion when asked for', async (t) => {
  const cp = await startControlPlane(t, { etcd: { progressNotifyInterval: '1s' } });
  await withNamespace(cp, 'w');
  const created = await createPod(cp, 'w', 'a');
  const w = await openWatch(
    cp.socketPath,
    `/api/v1/namespaces/w/pods?watch=true&allowWatchBookmarks=true&resourceVersion=${created.metadata.resourceVersion}`,
  );
  t.teardown(() => w.close());
  await withNamespace(cp, 'unrelated'); // advances the revision without an event on this watch
  const ev = await w.next(8000);
  t.is(ev.type, 'BOOKMARK');
  t.is(ev.object.kind, 'Pod');
  t.true(Number(ev.object.metadata.resourceVersion) > Number(created.metadata.resourceVersion));
});

test.serial(
  'a watch from a compacted resourceVersion gets 410 Gone; a relist recovers',
  async (t) => {
    const cp = await startControlPlane(t);
    await withNamespace(cp, 'w');
    const old = await createPod(cp, 'w', 'a');
    await relabel(cp, 'w', 'a', { v: '2' });
    await relabel(cp, 'w', 'a', { v: '3' });
    await cp.etcd.compact();

    const w = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/w/pods?watch=true&resourceVersion=${old.metadata.resourceVersion}`,
    );
    const ev = await w.next();
    t.is(ev.type, 'ERROR');
    t.is(ev.object.kind, 'Status');
    t.is(ev.object.code, 410);
    t.is(ev.object.reason, 'Expired');
    await w.ended;

    // Relist: the list's resourceVersion is a valid point to watch from.
    const list = await cp.request('GET', '/api/v1/namespaces/w/pods');
    t.is(list.body.items.length, 1);
    t.is(list.body.items[0].metadata.labels.v, '3');
    const w2 = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/w/pods?watch=true&resourceVersion=${list.body.metadata.resourceVersion}`,
    );
    t.teardown(() => w2.close());
    await relabel(cp, 'w', 'a', { v: '4' });
    const next = await w2.next();
    t.is(next.type, 'MODIFIED');
    t.is(next.object.metadata.labels.v, '4');

    // A continue token from before the compaction is refused the same way.
    const stale = Buffer.from(
      JSON.stringify({
        v: 'meta.k8s.io/v1',
        rv: Number(old.metadata.resourceVersion),
        start: '/registry/pods/w/a',
      }),
    ).toString('base64');
    const r = await cp.request('GET', `/api/v1/namespaces/w/pods?limit=1&continue=${stale}`);
    t.is(r.status, 410);
    t.is(r.body.reason, 'Expired');
  },
);

test.serial('@kubernetes/client-node lists and watches over the unix socket', async (t) => {
  const cp = await startControlPlane(t);
  await withNamespace(cp, 'cn');
  const core = cp.kubeConfig.makeApiClient(CoreV1Api);
  const created = await core.createNamespacedPod({
    namespace: 'cn',
    body: pod('x', { app: 'x' }) as never,
  });
  t.truthy(created.metadata?.uid);
  const list = await core.listNamespacedPod({ namespace: 'cn', labelSelector: 'app=x' });
  t.is(list.items.length, 1);

  const seen: string[] = [];
  let resolveSeen!: () => void;
  const gotModified = new Promise<void>((r) => (resolveSeen = r));
  const req = await new Watch(cp.kubeConfig).watch(
    '/api/v1/namespaces/cn/pods',
    { resourceVersion: list.metadata!.resourceVersion! },
    (type, obj: { metadata: { name: string } }) => {
      seen.push(`${type}:${obj.metadata.name}`);
      if (type === 'MODIFIED') resolveSeen();
    },
    () => undefined,
  );
  t.teardown(() => req.abort());
  await relabel(cp, 'cn', 'x', { v: '1' });
  await Promise.race([
    gotModified,
    new Promise((_, rej) => setTimeout(() => rej(new Error('no event')), 5000)),
  ]);
  t.deepEqual(seen, ['MODIFIED:x']);
});

test.serial(
  'a client-node informer syncs, follows changes and sees deletions over the unix socket',
  async (t) => {
    const cp = await startControlPlane(t);
    await withNamespace(cp, 'inf');
    await createPod(cp, 'inf', 'before', { app: 'x' });
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const informer = makeInformer(cp.kubeConfig, '/api/v1/namespaces/inf/pods', () =>
      core.listNamespacedPod({ namespace: 'inf' }),
    );
    const events: string[] = [];
    let notify: () => void = () => undefined;
    const record = (type: string) => (obj: V1Pod) => {
      events.push(`${type}:${obj.metadata!.name!}`);
      notify();
    };
    informer.on('add', record('add'));
    informer.on('update', record('update'));
    informer.on('delete', record('delete'));
    const waitFor = (want: string) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${want}; saw ${events.join(',')}`)),
          5000,
        );
        notify = () => {
          if (events.includes(want)) {
            clearTimeout(timer);
            resolve();
          }
        };
        notify();
      });
    await informer.start();
    t.teardown(() => informer.stop());
    await waitFor('add:before');
    await createPod(cp, 'inf', 'after');
    await waitFor('add:after');
    await relabel(cp, 'inf', 'before', { v: '2' });
    await waitFor('update:before');
    await cp.request('DELETE', '/api/v1/namespaces/inf/pods/after');
    await waitFor('delete:after');
    t.deepEqual(
      informer.list().map((p) => p.metadata!.name),
      ['before'],
    );
  },
);
