// Benchmark (needs root: a test netns + real etcd): initial sync and resync after an outage of a
// remote with N endpoints (default 20000; ISTHMUS_BENCH_ENDPOINTS), over mTLS on the etcd's unix
// socket, plus the heap held per remote endpoint. Run: node --import tsx clustermesh/remote/bench-resync.ts
import { Registry } from 'prom-client';
import { MeshTable } from '../kvstore/index.ts';
import { RemoteCluster } from './remote-cluster.ts';
import { CapturingLogger, LOCAL, remoteFixture, waitFor } from './test-fixtures.ts';
import { startMeshEtcd } from './test-etcd.ts';
import type { KeyValue, RemoteSink } from './types.ts';

const N = Number(process.env['ISTHMUS_BENCH_ENDPOINTS'] ?? 20_000);
const NODES = Math.ceil(N / 250);
const CHANGED = 200;
const f = remoteFixture('c2', 2);
const node = (i: number) => ({ n: 1 + (i % NODES), p: 1 + Math.floor(i / NODES) });

let upserts = 0;
let deletes = 0;
const counting: RemoteSink = {
  upsertIdentity: () => void upserts++,
  deleteIdentity: () => void deletes++,
  upsertIpcache: () => void upserts++,
  deleteIpcache: () => void deletes++,
  upsertNode: () => void upserts++,
  deleteNode: () => void deletes++,
  upsertService: () => void upserts++,
  deleteService: () => void deletes++,
};

const mesh = await startMeshEtcd('c2', 2);
try {
  const w = mesh.writer();
  const kvs: KeyValue[] = [f.config(), ...f.canaries()];
  for (let i = 1; i <= NODES; i++) kvs.push(f.node(i));
  for (let i = 1; i <= 100; i++) kvs.push(f.identity(i));
  for (let i = 0; i < N; i++) kvs.push(f.endpoint(node(i).n, node(i).p, 1 + (i % 100)));
  const t0 = Date.now();
  for (let i = 0; i < kvs.length; i += 100) {
    const ops = kvs.slice(i, i + 100).map((kv) => w.put(kv.key).value(kv.value));
    await w
      .if('cilium/none', 'Version', '==', 0)
      .then(...ops)
      .commit();
  }
  const loadMs = Date.now() - t0;
  w.close();

  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const remote = new RemoteCluster({
    bundle: await mesh.bundle(),
    mesh: new MeshTable(LOCAL),
    sink: counting,
    log: new CapturingLogger(),
    registry: new Registry(),
    backoff: { minMs: 50, maxMs: 200 },
  });
  const t1 = Date.now();
  remote.start();
  await waitFor('initial sync', () => remote.status().ready, 120_000).catch((e) => {
    console.error(JSON.stringify(remote.status()));
    throw e;
  });
  const initialMs = Date.now() - t1;
  global.gc?.();
  const heapPerEndpoint = (process.memoryUsage().heapUsed - heapBefore) / N;

  upserts = deletes = 0;
  let back = 0;
  await mesh.outage(async (side) => {
    await waitFor('disconnected', () => !remote.status().connected, 20_000);
    for (let i = 0; i < CHANGED; i++) await side.delete().key(kvs[kvs.length - 1 - i]!.key);
  }, 500);
  back = Date.now();
  await waitFor(
    'resync',
    () => remote.status().connections === 2 && remote.status().ready,
    120_000,
  );
  const resyncMs = Date.now() - back;
  await remote.stop();
  console.log(
    JSON.stringify({
      endpoints: N,
      nodes: NODES,
      loadIntoEtcdMs: loadMs,
      initialSyncMs: initialMs,
      resyncAfterOutageMs: resyncMs,
      resyncDeletes: deletes,
      resyncUpserts: upserts,
      heapBytesPerEndpoint: Math.round(heapPerEndpoint),
      gcExposed: global.gc !== undefined,
    }),
  );
  if (deletes !== CHANGED || upserts !== 0) process.exitCode = 1;
} finally {
  await mesh.close();
}
