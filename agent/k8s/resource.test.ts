// The list/watch loop on an in-memory API: back-off, 410 at connect, relist diffs, no hot loop.
import test from 'ava';
import { FakeKubeApi } from './fake-api.ts';
import { Resource, type Change } from './resource.ts';
import { sleep, waitFor } from './test-support.ts';
import type { KubeObject, ResourceDef } from './types.ts';

interface Thing extends KubeObject {
  v?: number;
}
const Things: ResourceDef<Thing> = {
  apiVersion: 'v1',
  kind: 'Thing',
  plural: 'things',
  namespaced: false,
};

let keepAlive: NodeJS.Timeout | undefined;
test.before(() => {
  keepAlive = setInterval(() => undefined, 1000); // the loop's timers are unref()ed
});
test.after.always(() => clearInterval(keepAlive));

function watched(api: FakeKubeApi, opts = {}) {
  const res = new Resource(api, Things, { backoff: { baseMs: 10, maxMs: 40 }, ...opts });
  const changes: Change<Thing>[] = [];
  res.onChange((c) => changes.push(c));
  res.start();
  return { res, changes };
}

test('an API server that is down at start: retried with back-off until it answers', async (t) => {
  const api = new FakeKubeApi();
  await api.create(Things, { metadata: { name: 'a' } });
  api.down = true;
  const { res } = watched(api);
  t.teardown(() => res.stop());
  await sleep(300);
  t.false(res.isSynced);
  t.true(api.calls.list >= 3 && api.calls.list <= 20, `${api.calls.list} list attempts in 300 ms`);
  api.down = false;
  await res.synced;
  t.is(res.get('a')?.metadata.name, 'a');
});

test('410 when re-watching after a compaction: relist, and events only for what changed', async (t) => {
  const api = new FakeKubeApi();
  for (const n of ['a', 'b', 'c']) await api.create(Things, { metadata: { name: n } });
  const { res, changes } = watched(api);
  t.teardown(() => res.stop());
  await res.synced;
  await waitFor(() => api.openWatches === 1);
  changes.length = 0;
  api.down = true;
  api.closeWatches(new Error('connection reset'));
  api.down = false;
  const a = await api.get(Things, 'a');
  await api.replace(Things, { ...a, v: 2 });
  await api.delete(Things, 'b');
  await api.create(Things, { metadata: { name: 'd' } });
  api.compact();
  await waitFor(() => res.stats.gone === 1 && res.get('d') !== undefined, 3000, 'relist');
  t.deepEqual(changes.map((c) => `${c.type} ${c.key}`).sort(), [
    'delete b',
    'upsert a',
    'upsert d',
  ]);
  t.is(res.stats.lists, 2);
});

test('a watch that ends at once without events does not spin', async (t) => {
  const api = new FakeKubeApi();
  const { res } = watched(api);
  t.teardown(() => res.stop());
  await res.synced;
  const before = api.calls.watch;
  const closer = setInterval(() => api.closeWatches(), 1);
  await sleep(300);
  clearInterval(closer);
  const watches = api.calls.watch - before;
  t.true(watches < 40, `${watches} watches in 300 ms`);
  t.true(watches >= 3, 'it kept re-watching');
});

test('after many failed watches the loop relists instead', async (t) => {
  const api = new FakeKubeApi();
  const { res } = watched(api, { relistAfterFailures: 3 });
  t.teardown(() => res.stop());
  await res.synced;
  await waitFor(() => api.openWatches === 1);
  const listsBefore = api.calls.list;
  const watchesBefore = api.calls.watch;
  api.down = true;
  api.closeWatches(new Error('reset'));
  await waitFor(() => api.calls.list > listsBefore, 3000, 'a list attempt');
  // The broken stream is failure 1; two failed re-watches make 3.
  t.is(api.calls.watch - watchesBefore, 2);
  api.down = false;
  await waitFor(() => res.stats.lists >= 2, 3000, 'relist');
});

test('a slow consumer sees bursts of one key merged and reads the latest object', async (t) => {
  const api = new FakeKubeApi();
  await api.create(Things, { metadata: { name: 'k' }, v: 0 });
  const { res } = watched(api);
  t.teardown(() => res.stop());
  const seen: (number | undefined)[] = [];
  const q = res.subscribe(async (_key, obj) => {
    seen.push(obj?.v);
    await sleep(30);
  });
  await q.synced;
  for (let v = 1; v <= 50; v++) {
    const cur = await api.get(Things, 'k');
    await api.replace(Things, { ...cur, v });
  }
  await sleep(10);
  await q.idle();
  t.true(seen.length <= 4, `handled ${seen.length} times for 51 versions`);
  t.is(seen.at(-1), 50);
  await api.delete(Things, 'k');
  await sleep(10);
  await q.idle();
  t.is(seen.at(-1), undefined, 'a delete reaches the handler as an absent object');
});
