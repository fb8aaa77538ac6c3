// ClusterMesh at scale in a real agent (issue 5): memory with 50,000 remote endpoints, and resync
// after a reconnect with 20,000 keys. A 1-node lab (c1, kernel datapath, mesh on) whose agent
// gets a bundle for a synthetic remote c2: a real mTLS mesh etcd in a test netns
// (clustermesh/remote/test-etcd.ts, certificates from the lab's mesh CA) holding c2's config,
// nodes, identities, endpoints and synced canaries (bench/mesh/agent-scale-remote.ts).
//   1. memory before the bundle (no remote) vs after all endpoints are in the BPF ipcache
//      (read back from the pinned map), per endpoint; time bundle -> all in the map;
//   2. c2 shrinks to `resyncKeys` endpoints (live deletes), then per repeat: the mesh etcd stops,
//      `churn` endpoints are deleted and `churn` added meanwhile, it starts again; time until the
//      BPF map holds the change, whether the BPF deletes were exactly the removed keys (map diff,
//      the agent's sink counters, a sample of unchanged keys polled every 5 ms) — against, in the
//      same outage, the library alone (RemoteCluster in this process, counting sink) and a raw
//      etcd range read of the same keys.
// `node --import tsx bench/mesh/agent-scale.ts [endpoints=50000] [resyncKeys=20000] [churn=200] [repeats=3] [timeoutS=900]`
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { callAgent } from '../../agent/endpoint/client.ts';
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { IPCACHE_PREFIX, MeshTable } from '../../clustermesh/kvstore/index.ts';
import { RemoteCluster } from '../../clustermesh/remote/index.ts';
import { startMeshEtcd, type MeshEtcd } from '../../clustermesh/remote/test-etcd.ts';
import type { RemoteSink } from '../../clustermesh/remote/types.ts';
import { openNodeMaps, type NodeMaps } from '../../integration/e2e/node-maps.ts';
import { planLab, type NodePlan } from '../../integration/lab/config.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import { controlPlanePaths } from '../../integration/lab/control-plane.ts';
import { bundleDirOf, meshPaths } from '../../integration/lab/mesh.ts';
import { labSecretStore } from '../../integration/lab/mesh-access.ts';
import { mountSecretOnce } from '../../integration/lab/secret-mount.ts';
import { readRecord } from '../../integration/lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../../integration/lab/testing.ts';
import { PODS_PER_NODE, SyntheticRemote, writeBatched } from './agent-scale-remote.ts';
import { agentConnectedTimes, heapMb, median, sampleMemory, sleep } from './agent-scale-support.ts';

const N = Number(process.argv[2] ?? 50_000);
const RESYNC_KEYS = Number(process.argv[3] ?? 20_000);
const CHURN = Number(process.argv[4] ?? 200);
const REPEATS = Number(process.argv[5] ?? 3);
const TIMEOUT_S = Number(process.argv[6] ?? 900);
const deadline = Date.now() + TIMEOUT_S * 1000;
const t0 = Date.now();
const progress = (what: string) =>
  console.error(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${what}`);

function left(what: string): number {
  const ms = deadline - Date.now();
  if (ms <= 0) throw new Error(`benchmark exceeded ${TIMEOUT_S} s during ${what}`);
  return ms;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, everyMs = 100) {
  while (!(await cond())) {
    left(what);
    await sleep(everyMs);
  }
}

async function agentStatus(node: NodePlan): Promise<AgentStatus> {
  const a = await callAgent(endpointSocketPath(node.stateDir), { op: 'status' }, 60_000);
  if (!a.ok) throw new Error(`agent of ${node.name} refused status: ${JSON.stringify(a)}`);
  return a.status as AgentStatus;
}

const cidr = (ip: string) => `${ip}/32`;

/** Remote pod rows (10.<id>.0.0/16, /32) in the node's BPF ipcache: cidr -> identity. */
function remoteRows(maps: NodeMaps, id: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const [c, v] of maps.ipcache.entries())
    if (c.startsWith(`10.${id}.`) && c.endsWith('/32')) out.set(c, v.identity);
  return out;
}

/** Polls the map for the `want` rows (identity, or undefined: absent) until all hold. */
async function waitRows(maps: NodeMaps, want: Map<string, number | undefined>, what: string) {
  const pending = new Map(want);
  while (pending.size) {
    for (const [c, id] of pending) if (maps.ipcache.get(c)?.identity === id) pending.delete(c);
    if (pending.size) {
      left(`${what} (${pending.size} rows pending)`);
      await sleep(100);
    }
  }
}

interface ResyncRun {
  backToFirstChangeMs: number;
  backToDoneMs: number;
  firstToDoneMs: number;
  backToConnectedLogMs: number | undefined;
  libraryMs: number;
  rangeReadMs: number;
  sinkDeletes: number;
  sinkUpserts: number;
  exact: boolean;
  unchangedMissingSeen: number;
  polls: number;
}

function countingSink(): RemoteSink & { n: { up: number; del: number } } {
  const n = { up: 0, del: 0 };
  const up = () => void n.up++;
  const del = () => void n.del++;
  return {
    n,
    upsertIdentity: up,
    deleteIdentity: del,
    upsertIpcache: up,
    deleteIpcache: del,
    upsertNode: up,
    deleteNode: del,
    upsertService: up,
    deleteService: del,
  };
}

function pick<T>(from: T[], n: number): T[] {
  const copy = [...from];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

async function main(): Promise<void> {
  if (RESYNC_KEYS > N) throw new Error('resyncKeys must be <= endpoints');
  await ensureBuilt();
  const name = uniqueLabName('bscale');
  const plan = planLab({
    name,
    encryption: 'none',
    clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 1 }],
  });
  progress(`lab ${name} up (1 node, kernel datapath, mesh on)`);
  const lab = await Lab.up(plan, { datapath: 'bpf', mesh: true });
  const node = plan.clusters[0]!.nodes[0]!;
  let etcd: MeshEtcd | undefined;
  let maps: NodeMaps | undefined;
  let library: RemoteCluster | undefined;
  try {
    const caDir = meshPaths(plan, plan.clusters[0]!).caDir;
    const ca = {
      certPem: readFileSync(join(caDir, 'ca.crt'), 'utf8'),
      keyPem: readFileSync(join(caDir, 'ca.key'), 'utf8'),
    };
    etcd = await startMeshEtcd('c2', 2, { ca });
    const remote = new SyntheticRemote({
      cluster: 'c2',
      id: 2,
      nodes: Math.ceil(N / PODS_PER_NODE),
      identities: 1000,
      nodeIpBase: [172, 30, 0, 20],
    });
    const w = etcd.writer();
    const loadStart = performance.now();
    const eps = Array.from({ length: N }, (_, k) => remote.endpoint(k));
    await writeBatched(w, [...remote.base(), ...eps, ...remote.canaries()]);
    const loadS = (performance.now() - loadStart) / 1000;
    progress(
      `c2 loaded: ${N} endpoints, ${remote.s.nodes} nodes, 1000 identities in ${loadS.toFixed(1)} s`,
    );

    const agentPid = readRecord(plan.runDir)!.agents.find((a) => a.node === node.name)!.pid;
    const status = () => agentStatus(node);
    const memBefore = await sampleMemory(agentPid, status, 5);
    progress(`agent without a remote: ${JSON.stringify(memBefore)}`);

    maps = openNodeMaps(node);
    // Added as `isthmus clustermesh connect` does: into c1's Secret, which the lab mounts on nodes.
    const apiSocket = controlPlanePaths(plan, plan.clusters[0]!).apiSocket;
    const secret = labSecretStore(apiSocket);
    const bundleText = await etcd.bundleText();
    const added = performance.now();
    await secret.put({ ...((await secret.get()) ?? {}), c2: bundleText });
    await mountSecretOnce(apiSocket, [bundleDirOf(node)]);
    const all = new Map(eps.map((_, k) => [cidr(remote.podIp(k)), remote.identityOf(k)]));
    await waitRows(maps, all, 'initial sync into the BPF map');
    const syncS = (performance.now() - added) / 1000;
    progress(`all ${N} endpoints in the BPF ipcache after ${syncS.toFixed(1)} s`);
    const st = await status();
    const r = st.clustermesh?.remotes.find((x) => x.cluster === 'c2');
    if (!r?.ready || r.counts.endpoints !== N)
      throw new Error(`agent status after the sync: ${JSON.stringify(r)}`);
    const mapRows = remoteRows(maps, 2).size;
    await sleep(Math.min(10_000, left('settling')));
    const memAfter = await sampleMemory(agentPid, status, 5);
    const rowsTotal = (await status()).ipcache.size;
    progress(`agent with ${N} remote endpoints: ${JSON.stringify(memAfter)}`);

    // c2 shrinks to RESYNC_KEYS endpoints, live.
    const shrinkStart = performance.now();
    const gone = Array.from({ length: N - RESYNC_KEYS }, (_, i) => RESYNC_KEYS + i);
    await writeBatched(
      w,
      gone.map((k) => ({ key: remote.endpoint(k).key })),
    );
    await waitRows(maps, new Map(gone.map((k) => [cidr(remote.podIp(k)), undefined])), 'shrink');
    const shrinkS = (performance.now() - shrinkStart) / 1000;
    const memShrunk = await sampleMemory(agentPid, status, 3);
    progress(`shrunk to ${RESYNC_KEYS} in ${shrinkS.toFixed(1)} s: ${JSON.stringify(memShrunk)}`);

    const sink = countingSink();
    library = new RemoteCluster({
      bundle: await etcd.bundle(),
      mesh: new MeshTable({ name: 'c1', id: 1 }),
      sink,
      log: { info: () => {}, warn: () => {} },
      registry: new Registry(),
    });
    library.start();
    await until('library initial sync', () => library!.status().ready);

    let live = Array.from({ length: RESYNC_KEYS }, (_, k) => k);
    let free = [...gone];
    const runs: ResyncRun[] = [];
    for (let rep = 0; rep < REPEATS; rep++) {
      const del = pick(live, CHURN);
      const delSet = new Set(del);
      const add = free.slice(0, CHURN);
      const unchanged = pick(
        live.filter((k) => !delSet.has(k)),
        1000,
      ).map((k) => cidr(remote.podIp(k)));
      const before = await status();
      const counters = { ...before.clustermesh!.applied['c2']!.ipcache };
      const conns = before.clustermesh!.remotes.find((x) => x.cluster === 'c2')!.connections;
      const libConns = library.status().connections;
      const rowsBefore = remoteRows(maps, 2);
      await etcd.outage(async (side) => {
        await until('agent sees c2 disconnected', async () => {
          const s = await status();
          return !s.clustermesh!.remotes.find((x) => x.cluster === 'c2')!.connected;
        });
        await until('library disconnected', () => !library!.status().connected);
        await writeBatched(side, [
          ...del.map((k) => ({ key: remote.endpoint(k).key })),
          ...add.map((k) => remote.endpoint(k)),
        ]);
      }, 1000);
      const back = performance.now();
      const backWall = Date.now();
      const libDone = until(
        'library resync',
        () => library!.status().connections > libConns && library!.status().ready,
        5,
      ).then(() => performance.now() - back);
      const want = new Map<string, number | undefined>([
        ...del.map((k): [string, undefined] => [cidr(remote.podIp(k)), undefined]),
        ...add.map((k): [string, number] => [cidr(remote.podIp(k)), remote.identityOf(k)]),
      ]);
      let first: number | undefined;
      let missingSeen = 0;
      let polls = 0;
      for (;;) {
        polls++;
        let done = 0;
        for (const [c, id] of want) if (maps.ipcache.get(c)?.identity === id) done++;
        for (const c of unchanged) if (!maps.ipcache.get(c)) missingSeen++;
        if (done > 0 && first === undefined) first = performance.now();
        if (done === want.size) break;
        left(`resync ${rep + 1} (${want.size - done} rows pending)`);
        await sleep(5);
      }
      const doneAt = performance.now();
      const libraryMs = await libDone;
      const after = await status();
      const afterCounters = after.clustermesh!.applied['c2']!.ipcache;
      const ar = after.clustermesh!.remotes.find((x) => x.cluster === 'c2')!;
      if (ar.connections !== conns + 1 || !ar.ready)
        throw new Error(`agent status after resync ${rep + 1}: ${JSON.stringify(ar)}`);
      const rowsAfter = remoteRows(maps, 2);
      const removed = [...rowsBefore.keys()].filter((c) => !rowsAfter.has(c)).sort();
      const appeared = [...rowsAfter.keys()].filter((c) => !rowsBefore.has(c)).sort();
      const exact =
        JSON.stringify(removed) === JSON.stringify(del.map((k) => cidr(remote.podIp(k))).sort()) &&
        JSON.stringify(appeared) === JSON.stringify(add.map((k) => cidr(remote.podIp(k))).sort()) &&
        rowsAfter.size === RESYNC_KEYS;
      const rangeStart = performance.now();
      const listed = await w.getAll().prefix(`${IPCACHE_PREFIX}/`).keys();
      const rangeReadMs = performance.now() - rangeStart;
      if (listed.length !== RESYNC_KEYS) throw new Error(`range read ${listed.length} keys`);
      const connectedLog = agentConnectedTimes(node).filter((t) => t >= backWall)[0];
      runs.push({
        backToFirstChangeMs: (first ?? doneAt) - back,
        backToDoneMs: doneAt - back,
        firstToDoneMs: doneAt - (first ?? doneAt),
        backToConnectedLogMs: connectedLog === undefined ? undefined : connectedLog - backWall,
        libraryMs,
        rangeReadMs,
        sinkDeletes: afterCounters.delete - counters.delete,
        sinkUpserts: afterCounters.upsert - counters.upsert,
        exact,
        unchangedMissingSeen: missingSeen,
        polls,
      });
      progress(`resync ${rep + 1}: ${JSON.stringify(runs.at(-1))}`);
      live = [...live.filter((k) => !delSet.has(k)), ...add];
      free = [...free.slice(CHURN), ...del];
    }
    report({ syncS, loadS, shrinkS, mapRows, rowsTotal, memBefore, memAfter, memShrunk, runs });
    if (runs.some((x) => !x.exact || x.unchangedMissingSeen > 0 || x.sinkDeletes !== CHURN))
      process.exitCode = 1;
    w.close();
  } catch (err) {
    await diagnose(node).catch(() => undefined);
    throw err;
  } finally {
    await library?.stop();
    maps?.close();
    await etcd?.close();
    await lab.down();
    const leftover = await labLeftovers(name);
    console.log(`left behind: ${leftover.length ? leftover.join(', ') : 'nothing'}`);
  }
}

/** What the agent says about its remotes, and its last log lines, for a failed run. */
async function diagnose(node: NodePlan): Promise<void> {
  const s = await agentStatus(node);
  console.error(`agent remotes: ${JSON.stringify(s.clustermesh?.remotes ?? 'no clustermesh')}`);
  const log = readFileSync(join(node.dir, 'agent.log'), 'utf8').split('\n');
  console.error(
    log
      .filter((l) => l.includes('clustermesh'))
      .slice(-15)
      .join('\n'),
  );
}

type Mem = Awaited<ReturnType<typeof sampleMemory>>;

function report(r: {
  syncS: number;
  loadS: number;
  shrinkS: number;
  mapRows: number;
  rowsTotal: number;
  memBefore: Mem;
  memAfter: Mem;
  memShrunk: Mem;
  runs: ResyncRun[];
}): void {
  const per = (a: number, b: number, n: number) => Math.round((a - b) / n);
  const med = (f: (x: ResyncRun) => number | undefined) =>
    median(r.runs.map(f).filter((x): x is number => x !== undefined));
  const ms = (x: number) => `${Math.round(x)} ms`;
  console.log(
    `agent at scale: ${N} remote endpoints (1000 identities, ${Math.ceil(N / 250)} nodes)`,
  );
  console.log(
    `  c2 mesh etcd loaded in                    ${r.loadS.toFixed(1)} s (${Math.round(N / r.loadS)}/s, txns of 100, 8 in flight)`,
  );
  console.log(
    `  bundle added -> all in the BPF ipcache    ${r.syncS.toFixed(1)} s (${Math.round(N / r.syncS)}/s); remote rows in the map ${r.mapRows}, agent ipcache rows ${r.rowsTotal} (map max 262144)`,
  );
  console.log(
    `  agent RSS   no remote ${r.memBefore.rssMb.toFixed(0)} MB -> ${N} endpoints ${r.memAfter.rssMb.toFixed(0)} MB: ${per(r.memAfter.rssMb * 2 ** 20, r.memBefore.rssMb * 2 ** 20, N)} B/endpoint`,
  );
  console.log(
    `  agent heap  no remote ${heapMb(r.memBefore)} MB -> ${N} endpoints ${heapMb(r.memAfter)} MB: ${per(r.memAfter.heapUsedMb * 2 ** 20, r.memBefore.heapUsedMb * 2 ** 20, N)} B/endpoint (median of samples, no forced GC)`,
  );
  console.log(
    `  after live shrink to ${RESYNC_KEYS} (${r.shrinkS.toFixed(1)} s for ${N - RESYNC_KEYS} deletes): RSS ${r.memShrunk.rssMb.toFixed(0)} MB, heap ${heapMb(r.memShrunk)} MB`,
  );
  console.log(
    `  resync, ${RESYNC_KEYS} keys, ${CHURN} deleted + ${CHURN} added during the outage, ${r.runs.length} repeats (medians):`,
  );
  console.log(
    `    etcd back -> first change in BPF map   ${ms(med((x) => x.backToFirstChangeMs))} (reconnect backoff, connect, list)`,
  );
  console.log(
    `    etcd back -> agent logs "connected"     ${ms(med((x) => x.backToConnectedLogMs))}`,
  );
  console.log(`    first -> last change in BPF map         ${ms(med((x) => x.firstToDoneMs))}`);
  console.log(`    etcd back -> map holds the change       ${ms(med((x) => x.backToDoneMs))}`);
  console.log(`    library alone, same outage (in-process) ${ms(med((x) => x.libraryMs))}`);
  console.log(
    `    raw etcd range read of the ${RESYNC_KEYS} keys ${ms(med((x) => x.rangeReadMs))}`,
  );
  console.log(
    `    ratio agent / library (per repeat)     ${median(r.runs.map((x) => x.backToDoneMs / x.libraryMs)).toFixed(2)}`,
  );
  for (const [i, x] of r.runs.entries())
    console.log(
      `    repeat ${i + 1}: sink deletes ${x.sinkDeletes}, upserts ${x.sinkUpserts}, map diff exact ${x.exact}, unchanged rows seen missing ${x.unchangedMissingSeen} over ${x.polls} polls of 1000`,
    );
}

await main();
