// Agent memory and CPU at rest (issue 4): a 3-node lab with the control plane and the kernel
// datapath, measured in three states of one run: empty (0 pods, 0 policies), with the pods, and
// with the pods and the policies. Each state: wait until every agent reports converged (maps read
// back), let it settle, then sample each agent process from /proc over a rest window without
// talking to it (RSS, CPU ticks per second); one status request after the window gives the V8
// heap and the BPF map entry counts (ipcache, policy and prefix entries of every endpoint).
// `node --import tsx bench/convergence/agent-at-rest.ts [pods=500] [policies=200] [windowS=40]`
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { converge, kubectl, statuses, waitForPods } from '../../integration/e2e-policy/support.ts';
import { withBenchLab } from './lab-bench.ts';
import { namespacesYaml, podRefs, podsYaml, policyYaml } from './at-rest-workload.ts';

const podCount = Number(process.argv[2] ?? 500);
const policyCount = Number(process.argv[3] ?? 200);
const windowS = Number(process.argv[4] ?? 40);
const SETTLE_MS = 10_000;
const BATCH = 50;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
const MB = 1024 * 1024;

interface Sample {
  ticks: number;
  rssKb: number;
}

/** utime+stime of the whole process (all threads) and VmRSS, read from /proc. */
function sample(pid: number): Sample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { ticks: Number(f[11]) + Number(f[12]), rssKb: Number(rss?.[1] ?? NaN) };
}

interface NodeFigures {
  node: string;
  endpoints: number;
  rssMb: number;
  heapUsedMb: number;
  cpuPct: number;
  /** busiest 1-s slice of the window, % of one core */
  peakPct: number;
  /** seconds of the window (from its start) whose CPU was above 5 % of a core */
  busySeconds: number[];
  ipcache: number;
  policyEntries: number;
  prefixEntries: number;
}

type State = { label: string; nodes: NodeFigures[] };

/** Samples every agent once a second over the window, then asks each for its status once. */
async function restWindow(
  label: string,
  pids: Map<string, number>,
  statusNow: () => Promise<Map<string, AgentStatus>>,
): Promise<State> {
  const series = new Map([...pids].map(([node, pid]) => [node, [sample(pid)]]));
  const t0 = performance.now();
  for (let s = 1; s <= windowS; s++) {
    await new Promise((r) => setTimeout(r, t0 + s * 1000 - performance.now()));
    for (const [node, pid] of pids) series.get(node)!.push(sample(pid));
  }
  const seconds = (performance.now() - t0) / 1000;
  const st = await statusNow();
  const nodes = [...series].map(([node, xs]): NodeFigures => {
    const s = st.get(node)!;
    if (!s.converged) throw new Error(`${label}: agent of ${node} not converged after the window`);
    const per = xs.slice(1).map((x, i) => ((x.ticks - xs[i]!.ticks) / CLK_TCK) * 100);
    const eps = s.endpoints;
    return {
      node,
      endpoints: eps.length,
      rssMb: xs.at(-1)!.rssKb / 1024,
      heapUsedMb: (s.process?.heapUsedBytes ?? NaN) / MB,
      cpuPct: ((xs.at(-1)!.ticks - xs[0]!.ticks) / CLK_TCK / seconds) * 100,
      peakPct: Math.max(...per),
      busySeconds: per.flatMap((p, i) => (p > 5 ? [i] : [])),
      ipcache: s.ipcache.size,
      policyEntries: eps.reduce((n, e) => n + (e.policyEntries ?? NaN), 0),
      prefixEntries: eps.reduce((n, e) => n + (e.prefixEntries ?? NaN), 0),
    };
  });
  const state = { label, nodes };
  printRows(state);
  if (Math.abs(seconds - windowS) > 2) console.log(`(window took ${seconds.toFixed(1)} s)`);
  return state;
}

const f1 = (x: number) => x.toFixed(1);

const HEADER =
  'state            node            eps  RSS MB  heap MB  CPU %  peak 1s %  ipcache  policy  prefix  busy seconds (>5%)';

/** One row per node, printed as soon as the state is measured (a later failure keeps them). */
function printRows(s: State): void {
  for (const n of s.nodes)
    console.log(
      `${s.label.padEnd(16)} ${n.node.padEnd(15)} ${String(n.endpoints).padStart(3)} ${f1(n.rssMb).padStart(7)} ${f1(n.heapUsedMb).padStart(8)} ${n.cpuPct.toFixed(2).padStart(6)} ${f1(n.peakPct).padStart(10)} ${String(n.ipcache).padStart(8)} ${String(n.policyEntries).padStart(7)} ${String(n.prefixEntries).padStart(7)}  ${n.busySeconds.join(',') || '-'}`,
    );
}

function printRatios(empty: State, pods: State, full: State): void {
  const mean = (s: State, f: (n: NodeFigures) => number) =>
    s.nodes.reduce((a, n) => a + f(n), 0) / s.nodes.length;
  const rss = (s: State) => mean(s, (n) => n.rssMb);
  const heap = (s: State) => mean(s, (n) => n.heapUsedMb);
  const cpu = (s: State) => mean(s, (n) => n.cpuPct);
  console.log(`\nmeans over the agents (each agent knows every pod of the cluster):`);
  console.log(
    `  RSS   full/empty ${(rss(full) / rss(empty)).toFixed(2)}x  (${f1(rss(empty))} -> ${f1(rss(pods))} -> ${f1(rss(full))} MB)`,
  );
  console.log(
    `  heap  full/empty ${(heap(full) / heap(empty)).toFixed(2)}x  (${f1(heap(empty))} -> ${f1(heap(pods))} -> ${f1(heap(full))} MB)`,
  );
  console.log(
    `  CPU   empty ${cpu(empty).toFixed(2)} %, pods ${cpu(pods).toFixed(2)} %, full ${cpu(full).toFixed(2)} % of one core`,
  );
  const kb = (mb: number, n: number) => ((mb * 1024) / n).toFixed(1);
  console.log(
    `  per pod:    RSS ${kb(rss(pods) - rss(empty), podCount)} kB, heap ${kb(heap(pods) - heap(empty), podCount)} kB`,
  );
  console.log(
    `  per policy: RSS ${kb(rss(full) - rss(pods), policyCount)} kB, heap ${kb(heap(full) - heap(pods), policyCount)} kB`,
  );
}

async function applyInBatches(
  env: Parameters<Parameters<typeof withBenchLab>[1]>[0],
  yamls: string[],
) {
  for (let i = 0; i < yamls.length; i += BATCH)
    await kubectl(env.plan, ['apply', '-f', '-'], yamls.slice(i, i + BATCH).join(''));
}

await withBenchLab(
  { prefix: 'brest', nodes: 3, fullPassIntervalMs: 10_000, timeoutMs: 30 * 60_000 },
  async (env) => {
    const nodes = env.plan.clusters[0]!.nodes.map((n) => n.name);
    const pids = new Map(nodes.map((n) => [n, env.lab.agentPid(n)!]));
    for (const [n, pid] of pids)
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('agent/main.'))
        throw new Error(`pid ${pid} of ${n} is not the agent`);
    const statusNow = () => statuses(env.plan);
    const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

    await converge(env.plan);
    await settle();
    console.log(HEADER);
    const empty = await restWindow('empty', pids, statusNow);

    let t = performance.now();
    await kubectl(env.plan, ['apply', '-f', '-'], namespacesYaml());
    const refs = podRefs(podCount);
    await applyInBatches(
      env,
      Array.from({ length: Math.ceil(podCount / BATCH) }, (_, b) =>
        podsYaml(b * BATCH, Math.min(podCount, (b + 1) * BATCH)),
      ),
    );
    await waitForPods(
      env.plan,
      refs.map((p) => `c1/${p.ns}/${p.name}`),
      900_000,
    );
    await converge(env.plan, 300_000);
    console.log(
      `${podCount} pods running and converged in ${((performance.now() - t) / 1000).toFixed(0)} s`,
    );
    await settle();
    const pods = await restWindow(`${podCount} pods`, pids, statusNow);

    t = performance.now();
    await applyInBatches(
      env,
      Array.from({ length: policyCount }, (_, i) => policyYaml(i)),
    );
    await converge(env.plan, 300_000);
    console.log(
      `${policyCount} policies converged in ${((performance.now() - t) / 1000).toFixed(0)} s`,
    );
    const st = await statusNow();
    const invalid = [...st.values()].flatMap((s) => s.policies.invalid);
    if (invalid.length)
      throw new Error(
        `invalid policies: ${invalid.map((p) => `${p.key}: ${p.reason}`).join('; ')}`,
      );
    await settle();
    const full = await restWindow(`+${policyCount} policies`, pids, statusNow);

    const identities = new Set([...st.values()].flatMap((s) => s.endpoints.map((e) => e.identity)));
    console.log(
      `\n3-node lab, kernel datapath, full passes every 10 s, ${windowS} s rest windows; ${identities.size} pod identities, ${[...st.values()][0]!.policies.enforced} policies enforced`,
    );
    console.log(HEADER);
    for (const s of [empty, pods, full]) printRows(s);
    printRatios(empty, pods, full);
  },
);
