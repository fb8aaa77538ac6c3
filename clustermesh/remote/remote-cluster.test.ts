// RemoteCluster on the in-memory FakeRemoteStore: initial sync, incremental changes, identical
// re-puts, an outage with changes meanwhile (canary-gated sweep), hostile records, refused configs.
import test, { type ExecutionContext } from 'ava';
import { Registry, type Counter } from 'prom-client';
import type { ConnectionBundle } from '../../certs/index.ts';
import { MeshTable, REJECTED_RECORDS_METRIC, RejectReason } from '../kvstore/index.ts';
import { FakeRemoteStore } from './fake-source.ts';
import { RemoteCluster } from './remote-cluster.ts';
import {
  CapturingLogger,
  hostileRecords,
  LOCAL,
  RecordingSink,
  remoteFixture,
  waitFor,
} from './test-fixtures.ts';
import type { KeyValue } from './types.ts';

const f = remoteFixture('c2', 2);

export function fakeBundle(cluster: string, clusterId: number): ConnectionBundle {
  return {
    version: 1,
    cluster,
    clusterId,
    endpoints: ['https://192.0.2.1:2379'],
    user: 'remote-c1',
    caPem: '',
    certPem: '',
    keyPem: '',
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
  };
}

function seed(store: FakeRemoteStore, kvs: KeyValue[]): void {
  for (const kv of kvs) store.put(kv.key, kv.value);
}

const initial = (): KeyValue[] => [
  f.config(),
  f.node(1),
  f.node(2),
  f.identity(1),
  f.identity(2),
  f.endpoint(1, 5, 1),
  f.endpoint(2, 6, 2),
  f.service('web'),
  ...f.canaries(),
];

function setup(
  t: ExecutionContext,
  opts: { bundle?: ConnectionBundle; seedWith?: KeyValue[] } = {},
) {
  const store = new FakeRemoteStore();
  seed(store, opts.seedWith ?? initial());
  const mesh = new MeshTable(LOCAL);
  mesh.upsertNode({ cluster: 'c1', name: 'l1', podCidrs: ['10.1.1.0/24'], ips: ['172.18.1.1'] });
  mesh.setEndpoint('10.1.1.5', 'c1');
  const sink = new RecordingSink();
  const log = new CapturingLogger();
  const registry = new Registry();
  const remote = new RemoteCluster({
    bundle: opts.bundle ?? fakeBundle('c2', 2),
    mesh,
    sink,
    log,
    registry,
    connect: () => store.connect(),
    backoff: { minMs: 5, maxMs: 20 },
    heartbeatMs: 50,
  });
  t.teardown(() => remote.stop());
  const rejected = async (reason: string): Promise<number> => {
    const c = registry.getSingleMetric(REJECTED_RECORDS_METRIC) as Counter | undefined;
    const v = (await c?.get())?.values.find((x) => x.labels['reason'] === reason);
    return v?.value ?? 0;
  };
  return { store, mesh, sink, log, registry, remote, rejected };
}

const INITIAL_CALLS = [
  '+id c2 131073',
  '+id c2 131074',
  '+ip c2 10.2.1.5 131073',
  '+ip c2 10.2.2.6 131074',
  '+node c2 n1 10.2.1.0/24',
  '+node c2 n2 10.2.2.0/24',
  '+svc c2 prod/web',
];

test('initial sync applies every valid record, nodes before ipcache, and reports ready', async (t) => {
  const { remote, sink, mesh } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  const order = [...sink.calls];
  t.true(order.indexOf('+node c2 n2 10.2.2.0/24') < order.indexOf('+ip c2 10.2.1.5 131073'));
  t.deepEqual(sink.take(), INITIAL_CALLS);
  const s = remote.status();
  t.like(s, { cluster: 'c2', clusterId: 2, state: 'connected', connected: true, reason: '' });
  t.deepEqual(s.counts, { identities: 2, endpoints: 2, nodes: 2, services: 1 });
  t.deepEqual(s.synced, { nodes: true, identities: true, ipcache: true, services: true });
  t.true(s.lastUpdateAgeMs! >= 0);
  t.is(mesh.endpointOwner('10.2.1.5'), 'c2');
  t.is(mesh.clusterNameById(2), 'c2');
});

test('incremental puts, updates and deletes reach the sink; identical re-puts emit nothing', async (t) => {
  const { remote, sink, store } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  for (const kv of initial()) store.put(kv.key, kv.value);
  t.deepEqual(sink.take(), [], 'identical re-puts of every key');
  const add = [f.node(3), f.identity(3), f.endpoint(3, 7, 3), f.service('api')];
  store.commit(add.map((kv) => ({ type: 'put', ...kv })));
  const moved = f.endpoint(1, 5, 2);
  store.put(moved.key, moved.value);
  store.delete(f.service('web').key);
  store.delete(f.endpoint(2, 6, 2).key);
  t.deepEqual(sink.take(), [
    '+id c2 131075',
    '+ip c2 10.2.1.5 131074',
    '+ip c2 10.2.3.7 131075',
    '+node c2 n3 10.2.3.0/24',
    '+svc c2 prod/api',
    '-ip c2 10.2.2.6 131074',
    '-svc c2 prod/web',
  ]);
  t.deepEqual(remote.status().counts, { identities: 3, endpoints: 2, nodes: 3, services: 1 });
});

test('an outage keeps all state; after it exactly the removed keys are deleted and the added appear', async (t) => {
  const { remote, sink, store } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  store.setDown(true);
  await waitFor('disconnected', () => remote.status().state === 'disconnected');
  t.false(remote.status().connected);
  t.is(remote.status().lastError?.code, 'ERR_REMOTE_CONNECT');
  store.delete(f.endpoint(2, 6, 2).key);
  store.delete(f.identity(2).key);
  store.delete(f.service('web').key);
  seed(store, [f.node(3), f.endpoint(3, 9, 1)]);
  const stillThere = f.endpoint(1, 5, 1);
  store.put(stillThere.key, stillThere.value); // re-put of the same value during the outage
  await new Promise((r) => setTimeout(r, 60));
  t.deepEqual(sink.take(), [], 'nothing applied or deleted while disconnected');
  t.deepEqual(remote.status().counts, { identities: 2, endpoints: 2, nodes: 2, services: 1 });
  store.setDown(false);
  await waitFor('reconnected', () => remote.status().connections === 2 && remote.status().ready);
  t.deepEqual(sink.take(), [
    '+ip c2 10.2.3.9 131073',
    '+node c2 n3 10.2.3.0/24',
    '-id c2 131074',
    '-ip c2 10.2.2.6 131074',
    '-svc c2 prod/web',
  ]);
});

test('after a reconnect the sweep waits for the synced canaries', async (t) => {
  const { remote, sink, store } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  store.setDown(true);
  await waitFor('disconnected', () => !remote.status().connected);
  // the remote's API server restarts from scratch: canaries gone, one endpoint gone, one new
  for (const c of f.canaries()) store.delete(c.key);
  store.delete(f.endpoint(2, 6, 2).key);
  seed(store, [f.endpoint(1, 8, 1)]);
  store.setDown(false);
  await waitFor('reconnected', () => remote.status().connected);
  t.deepEqual(sink.take(), ['+ip c2 10.2.1.8 131073'], 'no deletes before the listing is complete');
  t.false(remote.status().ready);
  t.deepEqual(remote.status().synced, {
    nodes: false,
    identities: false,
    ipcache: false,
    services: false,
  });
  seed(store, f.canaries());
  t.deepEqual(sink.take(), ['-ip c2 10.2.2.6 131074']);
  t.true(remote.status().ready);
});

test('a hostile remote: each bad record is rejected with its reason in logs and metric, nothing applied', async (t) => {
  const { remote, sink, store, log, rejected } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  const cases: [string, KeyValue, string][] = [
    ...hostileRecords(f),
    [
      'node overlapping a local node',
      f.node(5, { IPv4AllocCIDR: { IP: '10.1.1.0', Mask: '////AA==' } }),
      RejectReason.PodCidrOverlap,
    ],
  ];
  for (const [what, kv, reason] of cases) {
    const before = await rejected(reason);
    store.put(kv.key, kv.value);
    t.is(await rejected(reason), before + 1, what);
    t.like(log.warnings.at(-1), { cluster: 'c2', key: kv.key, reason }, what);
  }
  t.deepEqual(sink.take(), [], 'nothing applied');
  t.deepEqual(remote.status().counts, { identities: 2, endpoints: 2, nodes: 2, services: 1 });
  t.is(remote.status().rejected[RejectReason.ClusterNameMismatch], 1);
  // an accepted record replaced by an invalid one is withdrawn
  const bad = f.endpoint(1, 5, 1, { ID: 4 });
  store.put(bad.key, bad.value);
  t.deepEqual(sink.take(), ['-ip c2 10.2.1.5 131073']);
});

test('a cluster config with the local ID is refused: status says why, nothing applied', async (t) => {
  const ctx = setup(t, { seedWith: [f.config(1), ...initial().slice(1)] });
  ctx.remote.start();
  await waitFor('refused', () => ctx.remote.status().state === 'refused');
  const s = ctx.remote.status();
  t.is(s.lastError?.code, RejectReason.ClusterIdLocal);
  t.regex(s.reason, /local cluster/);
  t.true((await ctx.rejected(RejectReason.ClusterIdLocal)) >= 1);
  t.deepEqual(ctx.sink.take(), []);
  t.is(ctx.mesh.clusterNameById(1), 'c1');
});

test('a cluster ID used by another remote, and a config that disagrees with the bundle, are refused', async (t) => {
  const inUse = setup(t);
  inUse.mesh.setCluster({ name: 'c7', id: 2 });
  inUse.remote.start();
  await waitFor('refused', () => inUse.remote.status().state === 'refused');
  t.is(inUse.remote.status().lastError?.code, RejectReason.ClusterIdInUse);
  t.deepEqual(inUse.sink.take(), []);

  const mismatch = setup(t, { seedWith: [f.config(4), ...initial().slice(1)] });
  mismatch.remote.start();
  await waitFor('refused', () => mismatch.remote.status().state === 'refused');
  t.is(mismatch.remote.status().lastError?.code, RejectReason.ClusterIdMismatch);
  t.deepEqual(mismatch.sink.take(), []);
  // once the remote fixes its config, the retry connects
  mismatch.store.put(f.config().key, f.config().value);
  await waitFor('ready', () => mismatch.remote.status().ready);
  t.deepEqual(mismatch.sink.take(), INITIAL_CALLS);
});

test('drain deletes everything the remote contributed and forgets it in the mesh view', async (t) => {
  const { remote, sink, mesh } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  await remote.drain();
  t.deepEqual(
    sink.take(),
    INITIAL_CALLS.map((c) => c.replace(/^\+/, '-').replace(/^(-node c2 n\d) .*/, '$1')).sort(),
  );
  t.is(mesh.clusterNameById(2), undefined);
  t.is(mesh.endpointOwner('10.2.1.5'), undefined);
  t.is(remote.status().state, 'stopped');
});

test('an endpoint published before its node waits for it, then applies; a deleted waiting entry never does', async (t) => {
  const { remote, sink, store, rejected } = setup(t);
  remote.start();
  await waitFor('ready', () => remote.status().ready);
  sink.take();
  const early = f.endpoint(3, 7, 1);
  const gone = f.endpoint(3, 8, 1);
  store.put(early.key, early.value);
  store.put(gone.key, gone.value);
  t.is(await rejected(RejectReason.IpOutsidePodCidrs), 2);
  t.deepEqual(sink.take(), [], 'not applied without its node');
  store.delete(gone.key);
  store.put(f.node(3).key, f.node(3).value);
  t.deepEqual(sink.calls.splice(0), ['+node c2 n3 10.2.3.0/24', '+ip c2 10.2.3.7 131073']);
  t.is(remote.status().counts.endpoints, 3);
});
