// Mirror throughput: N CiliumEndpoints in the cluster → the clustermesh API server's ipcache
// keys in the mesh etcd, against a raw etcd put loop (100 in flight) on the same mesh etcd (TLS,
// client-cert auth, the writer user) in the same run. Everything lives in a network namespace
// this run creates and removes; the Kubernetes API server runs as its own process.
// Run (root): node --import tsx bench/mesh/mirror.ts [endpoints=10000] [timeoutSeconds=300]
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import { WRITER_USER } from '../../certs/index.ts';
import { KubeClient } from '../../agent/k8s/index.ts';
import { startEtcd, type RunningEtcd } from '../../integration/etcd/index.ts';
import { createTestNetns, type TestNetns } from '../../integration/etcd/test-netns.ts';
import {
  startApiServerProcess,
  type ApiServerProcess,
} from '../../integration/apiserver/apiserver-process.ts';
import { UnixSocketKubeConfig } from '../../integration/apiserver/client.ts';
import {
  encodeIPIdentityPair,
  ipIdentityPairFor,
  IPCACHE_PREFIX,
} from '../../clustermesh/kvstore/index.ts';
import { EtcdMeshKv } from '../../clustermesh/apiserver/etcd-kv.ts';
import { ClusterMeshApiServer } from '../../clustermesh/apiserver/server.ts';
import { startMeshEtcd, type MeshEtcd } from '../../clustermesh/apiserver/test-support.ts';
import {
  CLUSTER,
  createNamespace,
  defs,
  endpoint,
} from '../../clustermesh/apiserver/test-objects.ts';

const N = Number(process.argv[2] ?? 10_000);
const TIMEOUT_S = Number(process.argv[3] ?? 300);
const RAW_IN_FLIGHT = 100;
const CREATE_IN_FLIGHT = 50;
const deadline = Date.now() + TIMEOUT_S * 1000;
const t0 = Date.now();
const progress = (what: string) =>
  console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);

const ipOf = (i: number) => `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;

function checkDeadline(what: string): void {
  if (Date.now() > deadline) throw new Error(`benchmark exceeded ${TIMEOUT_S} s during ${what}`);
}

/** Runs `count` tasks with `inFlight` at once. */
async function pool(
  count: number,
  inFlight: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      if (i % 500 === 0) checkDeadline('a task pool');
      await task(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, worker));
}

async function rawPutRate(client: Etcd3, round: number): Promise<number> {
  const prefix = `cilium/bench/raw${round}/`;
  const value = (i: number) =>
    encodeIPIdentityPair(
      ipIdentityPairFor({
        ip: ipOf(i),
        hostIp: '172.18.0.5',
        identity: 65537,
        namespace: 'bench',
        pod: `p${i}`,
      }),
    );
  const started = performance.now();
  await pool(N, RAW_IN_FLIGHT, async (i) => await client.put(`${prefix}${i}`).value(value(i)));
  const rate = N / ((performance.now() - started) / 1000);
  await client.delete().prefix(prefix);
  return rate;
}

/** Counts distinct ipcache keys put from `fromRevision`; resolves when `n` are present. */
async function watchIpcache(client: Etcd3, fromRevision: number, n: number) {
  const seen = new Set<string>();
  let first = 0;
  let resolveAll!: (at: number) => void;
  const all = new Promise<number>((r) => (resolveAll = r));
  const watcher = await client
    .watch()
    .prefix(`${IPCACHE_PREFIX}/`)
    .startRevision(String(fromRevision))
    .create();
  watcher.on('put', (kv) => {
    if (seen.size === 0) first = performance.now();
    seen.add(kv.key.toString());
    if (seen.size === n) resolveAll(performance.now());
  });
  return { all, firstWriteAt: () => first, seen, cancel: () => watcher.cancel() };
}

/** With the mirror running: N more endpoints created; how fast their keys follow. */
async function liveSync(client: Etcd3, kube: KubeClient, n: number) {
  const rev = Number(
    (await client.kv.range({ key: Buffer.from('cilium/'), limit: 1 })).header.revision,
  );
  const watch = await watchIpcache(client, rev + 1, n);
  const started = performance.now();
  await pool(n, CREATE_IN_FLIGHT, (i) =>
    kube.create(
      defs.CiliumEndpoints,
      endpoint(`q${i}`, ipOf(n + i), 65537, '172.18.0.6', 'bench', true),
    ),
  );
  const createdAt = performance.now();
  const allAt = await withDeadline(watch.all, () => `live: only ${watch.seen.size}/${n} keys`);
  watch.cancel();
  return {
    rate: n / ((allAt - started) / 1000),
    createRate: n / ((createdAt - started) / 1000),
    lagMs: allAt - createdAt,
  };
}

function withDeadline<T>(p: Promise<T>, what: () => string): Promise<T> {
  return Promise.race([
    p,
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`${what()} before the deadline`)),
        Math.max(0, deadline - Date.now()),
      ).unref(),
    ),
  ]);
}

async function main(): Promise<void> {
  let ns: TestNetns | undefined;
  let kubeEtcd: RunningEtcd | undefined;
  let api: ApiServerProcess | undefined;
  let mesh: MeshEtcd | undefined;
  let kubeConfig: UnixSocketKubeConfig | undefined;
  let server: ClusterMeshApiServer | undefined;
  const clients: Etcd3[] = [];
  const timer = setTimeout(() => {
    console.error(`benchmark exceeded ${TIMEOUT_S} s: giving up`);
    process.exitCode = 2;
  }, TIMEOUT_S * 1000);
  timer.unref();
  try {
    ns = createTestNetns('h10bench');
    kubeEtcd = await startEtcd({
      name: `h10bench-k-${randomBytes(3).toString('hex')}`,
      netns: ns.name,
    });
    const socketPath = path.join(kubeEtcd.baseDir, 'apiserver.sock');
    api = await startApiServerProcess({
      netns: ns.name,
      etcd: kubeEtcd.socketEndpoint,
      socketPath,
    });
    mesh = await startMeshEtcd({ prefix: 'h10bench-m', netns: ns.name, cluster: CLUSTER.name });
    kubeConfig = new UnixSocketKubeConfig(socketPath);
    const kube = new KubeClient(kubeConfig);
    const writer = mesh.clientAs(WRITER_USER);
    clients.push(writer);

    await createNamespace(kube, 'bench');
    const created = performance.now();
    await pool(N, CREATE_IN_FLIGHT, (i) =>
      kube.create(
        defs.CiliumEndpoints,
        endpoint(`p${i}`, ipOf(i), 65537 + (i % 100), '172.18.0.5', 'bench', true),
      ),
    );
    progress('endpoints created');
    const createRate = N / ((performance.now() - created) / 1000);

    // What the mirror's initial list costs on its own (the lab API server pages by 500).
    const listStarted = performance.now();
    const listed = await kube.list(defs.CiliumEndpoints);
    const listSeconds = (performance.now() - listStarted) / 1000;
    if (listed.items.length !== N)
      throw new Error(`listed ${listed.items.length} of ${N} endpoints`);
    const raw1 = await rawPutRate(writer, 1);
    progress(`raw put loop 1: ${Math.round(raw1)}/s`);
    const rev = Number(
      (await writer.kv.range({ key: Buffer.from('cilium/'), limit: 1 })).header.revision,
    );
    const watch = await watchIpcache(writer, rev + 1, N);
    const mirrorClient = mesh.clientAs(WRITER_USER);
    clients.push(mirrorClient);
    server = new ClusterMeshApiServer({
      onLog: (event, fields) =>
        event.endsWith('-failed') && progress(`${event} ${JSON.stringify(fields).slice(0, 300)}`),
      cluster: CLUSTER,
      kube: new KubeClient(kubeConfig),
      kv: new EtcdMeshKv(mirrorClient),
    });
    const started = performance.now();
    await server.start();
    const tick = setInterval(
      () => progress(`mirror: ${watch.seen.size} keys, ${JSON.stringify(server?.status())}`),
      10_000,
    );
    tick.unref();
    const allAt = await Promise.race([
      watch.all,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`only ${watch.seen.size}/${N} ipcache keys before the deadline`)),
          Math.max(0, deadline - Date.now()),
        ).unref(),
      ),
    ]);
    clearInterval(tick);
    await server.synced;
    watch.cancel();
    const endToEnd = N / ((allAt - started) / 1000);
    const writePhase = N / ((allAt - watch.firstWriteAt()) / 1000);
    const live = await liveSync(writer, kube, N);
    const raw2 = await rawPutRate(writer, 2);
    const raw = (raw1 + raw2) / 2;
    const stats = server.status().writer;

    const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(9);
    console.log(
      `mesh mirror throughput, ${N} CiliumEndpoints, mesh etcd with TLS + client-cert auth`,
    );
    console.log(
      `  CiliumEndpoints created in the cluster     ${fmt(createRate)}/s (${CREATE_IN_FLIGHT} in flight)`,
    );
    console.log(
      `  raw etcd put loop, ${RAW_IN_FLIGHT} in flight          ${fmt(raw)}/s (runs: ${fmt(raw1).trim()}, ${fmt(raw2).trim()})`,
    );
    console.log(
      `  mirror, start -> all ${N} ipcache keys   ${fmt(endToEnd)}/s (list from the API server included)`,
    );
    console.log(
      `  list of ${N} CiliumEndpoints alone         ${listSeconds.toFixed(2).padStart(9)} s`,
    );
    console.log(`  mirror, first -> last ipcache write       ${fmt(writePhase)}/s`);
    console.log(
      `  ratio end-to-end / raw                     ${(endToEnd / raw).toFixed(2)} (target >= 0.8)`,
    );
    console.log(`  ratio write phase / raw                    ${(writePhase / raw).toFixed(2)}`);
    console.log(
      `  live: ${N} more created while mirroring ${fmt(live.rate)}/s keys (created at ${fmt(live.createRate).trim()}/s); last key ${Math.round(live.lagMs)} ms after the last create`,
    );
    console.log(
      `  mirror transactions ${stats.txns}, puts ${stats.puts}, ops/txn ${(stats.puts / Math.max(1, stats.txns)).toFixed(1)}`,
    );
  } finally {
    clearTimeout(timer);
    await server?.stop();
    for (const c of clients) c.close();
    kubeConfig?.close();
    await api?.stop();
    await mesh?.stop();
    await kubeEtcd?.stop();
    ns?.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
