// MeshWriter on the in-memory kv: batching, merging, no rewrite of stored values, rate bound,
// one key never in two transactions at once, retries; PrefixMirror's prune-then-canary order.
import test from 'ava';
import { syncedKey, NODES_PREFIX } from '../kvstore/index.ts';
import { FakeMeshKv } from './fake-kv.ts';
import { MeshWriter } from './mesh-writer.ts';
import { PrefixMirror } from './prefix-mirror.ts';

test('updates of one key merge; values already stored are never written', async (t) => {
  const kv = new FakeMeshKv();
  kv.data.set('cilium/a', '1');
  kv.data.set('cilium/b', '2');
  const w = new MeshWriter(kv, { maxTxnsInFlight: 1 });
  await w.load('cilium/');
  w.set('cilium/a', '1'); // as stored
  w.set('cilium/gone', undefined); // absent already
  t.is(w.backlog, 0);
  t.is(w.stats.unchanged, 1);
  let release!: () => void;
  kv.gate = new Promise((r) => (release = r));
  w.set('cilium/c', 'x'); // in flight, holds the only slot
  w.set('cilium/b', '3');
  w.set('cilium/b', '2'); // back to the stored value before it was written
  w.set('cilium/d', '1');
  w.set('cilium/d', '2');
  t.is(w.backlog, 2, 'c in flight, d pending once');
  kv.gate = undefined;
  release();
  await w.barrier();
  t.deepEqual(kv.txns, [[{ key: 'cilium/c', value: 'x' }], [{ key: 'cilium/d', value: '2' }]]);
});

test('batches up to maxOpsPerTxn ops per transaction', async (t) => {
  const kv = new FakeMeshKv();
  const w = new MeshWriter(kv, { maxOpsPerTxn: 50, maxTxnsInFlight: 1, maxOpsPerSecond: 1e6 });
  for (let i = 0; i < 500; i++) w.set(`cilium/k${i}`, String(i));
  await w.barrier();
  t.is(kv.data.size, 500);
  t.true(kv.txns.every((ops) => ops.length <= 50));
  t.true(kv.txns.length <= 11, `${kv.txns.length} transactions`);
});

test('a key is never in two transactions at once; the newest value wins', async (t) => {
  const kv = new FakeMeshKv();
  let release!: () => void;
  kv.gate = new Promise((r) => (release = r));
  const w = new MeshWriter(kv, { maxTxnsInFlight: 4 });
  w.set('cilium/k', 'v1');
  await Promise.resolve();
  w.set('cilium/k', 'v2'); // v1 is in flight
  w.set('cilium/other', 'o');
  const done = w.barrier();
  await new Promise((r) => setTimeout(r, 20));
  t.is(kv.maxInFlight, 2, 'the second batch holds only the other key');
  kv.gate = undefined;
  release();
  await done;
  t.is(kv.data.get('cilium/k'), 'v2');
  const order = kv.txns
    .flat()
    .filter((op) => op.key === 'cilium/k')
    .map((op) => op.value);
  t.deepEqual(order, ['v1', 'v2']);
});

test('the token bucket bounds the write rate', async (t) => {
  const kv = new FakeMeshKv();
  const w = new MeshWriter(kv, { maxOpsPerTxn: 100, maxOpsPerSecond: 1000 });
  const keepAlive = setInterval(() => {}, 1000); // the writer's timers are unref()ed
  t.teardown(() => clearInterval(keepAlive));
  const started = Date.now();
  for (let i = 0; i < 3000; i++) w.set(`cilium/k${i}`, 'v');
  await w.barrier();
  const elapsed = Date.now() - started;
  // a burst of one second's worth, then 1000/s: 3000 ops need about 2 s, never much less
  t.true(elapsed >= 1800, `${elapsed} ms`);
  t.true(elapsed < 4000, `${elapsed} ms`);
  t.is(kv.data.size, 3000);
});

test('a failed transaction is retried; deletes are committed too', async (t) => {
  const kv = new FakeMeshKv();
  kv.data.set('cilium/old', 'x');
  const w = new MeshWriter(kv, { retryBaseMs: 5, retryMaxMs: 20 });
  const keepAlive = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(keepAlive));
  await w.load('cilium/');
  kv.failNext = 2;
  w.set('cilium/new', 'y');
  w.set('cilium/old', undefined);
  await w.barrier();
  t.deepEqual([...kv.data], [['cilium/new', 'y']]);
  t.is(w.stats.failedTxns, 2);
  t.is(w.stats.deletes, 1);
});

test('PrefixMirror prunes leftovers only at sync, then writes the canary', async (t) => {
  const kv = new FakeMeshKv();
  const key = (n: string) => `${NODES_PREFIX}/c1/${n}`;
  kv.data.set(key('kept'), 'same');
  kv.data.set(key('stale'), 'old');
  kv.data.set(`${NODES_PREFIX}/c2/other`, 'not ours');
  const w = new MeshWriter(kv);
  const m = new PrefixMirror(w, 'c1', NODES_PREFIX, `${NODES_PREFIX}/c1/`);
  await m.load();
  m.put(key('kept'), 'same');
  m.put(key('new'), 'n');
  await w.barrier();
  t.true(kv.data.has(key('stale')), 'nothing pruned before the initial sync');
  t.false(kv.data.has(syncedKey('c1', NODES_PREFIX)));
  t.is(await m.markSynced(), 1);
  t.false(kv.data.has(key('stale')));
  t.true(kv.data.has(`${NODES_PREFIX}/c2/other`));
  const canaryTxn = kv.txns.findIndex((ops) =>
    ops.some((o) => o.key === syncedKey('c1', NODES_PREFIX)),
  );
  const pruneTxn = kv.txns.findIndex((ops) => ops.some((o) => o.key === key('stale')));
  t.true(pruneTxn >= 0 && canaryTxn > pruneTxn);
  t.false(
    kv.txns.flat().some((o) => o.key === key('kept')),
    'the unchanged key is not rewritten',
  );
});

test('the full pass repairs keys changed, deleted or added behind the writer', async (t) => {
  const kv = new FakeMeshKv();
  const key = (n: string) => `${NODES_PREFIX}/c1/${n}`;
  const w = new MeshWriter(kv);
  const m = new PrefixMirror(w, 'c1', NODES_PREFIX, `${NODES_PREFIX}/c1/`);
  await m.load();
  t.is(await m.resync(), 0, 'no full pass before the initial sync');
  m.put(key('a'), 'A');
  m.put(key('b'), 'B');
  m.put(key('c'), 'C');
  await m.markSynced();
  const txns = kv.txns.length;
  t.is(await m.resync(), 0);
  t.is(kv.txns.length, txns, 'nothing rewritten when nothing drifted');
  kv.data.delete(key('a'));
  kv.data.set(key('b'), 'tampered');
  kv.data.set(key('intruder'), 'x');
  t.is(await m.resync(), 3);
  t.is(kv.data.get(key('a')), 'A');
  t.is(kv.data.get(key('b')), 'B');
  t.false(kv.data.has(key('intruder')));
  t.is(kv.data.get(key('c')), 'C');
});
