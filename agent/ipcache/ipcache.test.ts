import test from 'ava';
import { createFakeDatapath } from '../datapath/fake.ts';
import { IpcacheReconciler } from './reconciler.ts';
import { IpcacheTable } from './table.ts';

test('node rows win over endpoint rows for the same address; removal falls back', (t) => {
  const table = new IpcacheTable();
  const seen: string[] = [];
  table.onChange((cidr, e) => seen.push(`${cidr}=${e?.identity ?? '-'}`));
  table.upsert('endpoint', { cidr: '10.1.0.7', identity: 70000 });
  table.upsert('node', { cidr: '10.1.0.7/32', identity: 1 });
  table.upsert('endpoint', { cidr: '10.1.0.7', identity: 70001 }); // hidden: no change
  t.is(table.get('10.1.0.7')?.identity, 1);
  table.delete('node', '10.1.0.7');
  t.is(table.get('10.1.0.7/32')?.identity, 70001);
  t.deepEqual(seen, ['10.1.0.7/32=70000', '10.1.0.7/32=1', '10.1.0.7/32=70001']);
});

test('replaceSource removes the rows a source no longer has', (t) => {
  const table = new IpcacheTable();
  table.replaceSource('node', [
    { cidr: '172.30.0.3', identity: 1 },
    { cidr: '172.30.0.4', identity: 6 },
  ]);
  table.replaceSource('node', [{ cidr: '172.30.0.3', identity: 1 }]);
  t.deepEqual([...table.all().keys()], ['172.30.0.3/32']);
});

test('the reconciler writes changes, and its full pass repairs drift found by reading back', (t) => {
  const dp = createFakeDatapath();
  const table = new IpcacheTable();
  const repairs: string[] = [];
  const r = new IpcacheReconciler(table, dp.ipcache, {
    intervalMs: 0,
    onRepair: (cidr, what) => repairs.push(`${what} ${cidr}`),
  });
  dp.ipcache.set('10.9.9.9/32', { identity: 99, encrypt: false }); // not ours: pruned at start
  table.upsert('endpoint', { cidr: '10.1.0.7', identity: 70000, hostIp: '172.30.0.4' });
  r.start();
  t.deepEqual(repairs, [], 'the first pass is not drift');
  t.is(dp.ipcache.get('10.9.9.9/32'), undefined);
  t.deepEqual(dp.ipcache.get('10.1.0.7/32'), {
    identity: 70000,
    hostIp: '172.30.0.4',
    encrypt: false,
  });
  table.upsert('endpoint', { cidr: '10.1.0.8', identity: 70001 });
  t.is(dp.ipcache.get('10.1.0.8/32')?.identity, 70001, 'written on change');
  t.deepEqual(r.converged(), { ok: true, size: 2 });

  // behind our back: one row changed, one removed, one added
  dp.ipcache.set('10.1.0.7/32', { identity: 2, encrypt: false });
  dp.ipcache.delete('10.1.0.8/32');
  dp.ipcache.set('10.1.0.9/32', { identity: 5, encrypt: false });
  const c = r.converged();
  t.false(c.ok);
  t.is(r.prune(), 3);
  t.deepEqual(repairs.sort(), ['added 10.1.0.8/32', 'changed 10.1.0.7/32', 'removed 10.1.0.9/32']);
  t.deepEqual(r.converged(), { ok: true, size: 2 });
  table.delete('endpoint', '10.1.0.8');
  t.is(dp.ipcache.get('10.1.0.8/32'), undefined);
  r.stop();
});
