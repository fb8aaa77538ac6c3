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
import { issueClientCertificate, type KeyPairPem } from '../../certs/index.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { IPCACHE_PREFIX, MeshTable } from '../../clustermesh/kvstore/index.ts';
import { RemoteCluster } from '../../clustermesh/remote/index.ts';
import { READER, startMeshEtcd, type MeshEtcd } from '../../clustermesh/remote/test-etcd.ts';
import type { RemoteSink } from '../../clustermesh/remote/types.ts';
import { openNodeMaps, type NodeMaps } from '../../integration/e2e/node-maps.ts';
import { planLab, type NodePlan } from '../../integration/lab/config.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import { controlPlanePaths } from '../../integration/lab/control-plane.ts';
import { bundleDirOf, meshPaths } from '../../integration/lab/mesh.ts';
import { labSecretStore } from '../../integration/lab/mesh-access.ts';
import { mountSecretOnce } from '../../integration/lab/secret-mount.ts';
import { netnsPath } from '../../integration/lab/netns.ts';
import { readRecord } from '../../integration/lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../../integration/lab/testing.ts';
import { report, type ResyncRun } from './agent-scale-report.ts';
import { PODS_PER_NODE, SyntheticRemote, writeBatched } from './agent-scale-remote.ts';
import {
  agentConnectedTimes,
  gcHeapMb,
  heapMb,
  median,
  sampleMemory,
  sleep,
} from './agent-scale-support.ts';

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
    const gc = () => gcHeapMb(agentPid, netnsPath(node.netns), left('a GC'));
    const gcBefore = await gc();
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
    const gcAfter = await gc();
    progress(`agent with ${N} remote endpoints: ${JSON.stringify(memAfter)}`);

    // The library alone, same listing, no agent tables or BPF: the baseline of the initial sync.
    const sink = countingSink();
    library = new RemoteCluster({
      bundle: await etcd.bundle(),
      mesh: new MeshTable({ name: 'c1', id: 1 }),
      sink,
      log: { info: () => {}, warn: () => {} },
      registry: new Registry(),
    });
    const libraryStart = performance.now();
    library.start();
    await until('library initial sync', () => library!.status().ready);
    const librarySyncS = (performance.now() - libraryStart) / 1000;
    progress(`library alone (counting sink): initial sync of ${N} in ${librarySyncS.toFixed(1)} s`);

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
    const gcShrunk = await gc();
    progress(`shrunk to ${RESYNC_KEYS} in ${shrinkS.toFixed(1)} s: ${JSON.stringify(memShrunk)}`);

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
    const relists = await relistRuns(node, etcd, ca, secret, apiSocket, status);
    const gcEnd = await gc();
    const gcHeap = { before: gcBefore, after: gcAfter, shrunk: gcShrunk, end: gcEnd };
    report({
      endpoints: N,
      resyncKeys: RESYNC_KEYS,
      churn: CHURN,
      relists,
      librarySyncS,
      syncS,
      loadS,
      shrinkS,
      mapRows,
      rowsTotal,
      memBefore,
      memAfter,
      memShrunk,
      gcHeap,
      runs,
    });
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

/**
 * The resync's own work without a reconnect backoff: c2's bundle re-issued (a new reader
 * certificate) makes the agent reconnect at once and relist; Secret written -> the agent logs
 * "connected". Nothing changed in c2, so the sink must see no call.
 */
async function relistRuns(
  node: NodePlan,
  etcd: MeshEtcd,
  ca: KeyPairPem,
  secret: ReturnType<typeof labSecretStore>,
  apiSocket: string,
  status: () => Promise<AgentStatus>,
): Promise<number[]> {
  const out: number[] = [];
  for (let rep = 0; rep < REPEATS; rep++) {
    const before = await status();
    const applied = JSON.stringify(before.clustermesh!.applied['c2']);
    const logged = agentConnectedTimes(node).length;
    const text = await etcd.bundleText(await issueClientCertificate(ca, { user: READER }));
    const at = Date.now();
    await secret.put({ ...((await secret.get()) ?? {}), c2: text });
    await mountSecretOnce(apiSocket, [bundleDirOf(node)]);
    await until('relist', () => agentConnectedTimes(node).length > logged, 20);
    out.push(agentConnectedTimes(node)[logged]! - at);
    const after = await status();
    const now = JSON.stringify(after.clustermesh!.applied['c2']);
    if (now !== applied)
      throw new Error(`a relist of an unchanged remote made sink calls: ${applied} -> ${now}`);
    progress(`relist ${rep + 1}: ${out.at(-1)} ms`);
  }
  return out;
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

await main();
