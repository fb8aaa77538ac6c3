// Policy engine benchmark: full computation, per-identity delta latency, memory per identity, and
// the incremental design against a recompute-every-endpoint-per-change baseline, in one run.
// Run: node --import tsx bench/policy/policy-bench.ts   (re-executes itself with --expose-gc)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PolicyEngine } from '../../agent/policy/engine.ts';
import { entryKey } from '../../agent/policy/resolve.ts';
import {
  allIdentities,
  CLUSTERS,
  endpoints,
  identityId,
  identityLabels,
  NAMED_PORTS,
  PER_CLUSTER,
  policies,
} from './workload.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  process.exit(r.status ?? 1);
}
const collect = gc!;

function heap(): number {
  for (let i = 0; i < 3; i++) collect();
  return process.memoryUsage().heapUsed;
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const fmt = (x: number) => x.toFixed(3);

function buildEngine(): {
  engine: PolicyEngine;
  tIdentities: number;
  tPolicies: number;
  tEndpoints: number;
} {
  const engine = new PolicyEngine('c1');
  let t0 = process.hrtime.bigint();
  for (const { id, labels } of allIdentities()) engine.upsertIdentity(id, labels);
  const tIdentities = ms(t0);
  const parsed = policies(); // parsing and validation are not part of the computation
  t0 = process.hrtime.bigint();
  for (const p of parsed) engine.upsertPolicy(p);
  const tPolicies = ms(t0);
  t0 = process.hrtime.bigint();
  for (const ep of endpoints()) engine.upsertEndpoint({ ...ep, namedPorts: NAMED_PORTS });
  const tEndpoints = ms(t0);
  return { engine, tIdentities, tPolicies, tEndpoints };
}

const base = heap();
const { engine, tIdentities, tPolicies, tEndpoints } = buildEngine();
const entries = engine.endpointNames().reduce((n, e) => n + engine.policyOf(e).entries.length, 0);
const afterAll = heap();

// memory of the identity side alone: an engine with identities and policies (selector cache filled), no endpoints
const heapBefore = heap();
const idOnly = new PolicyEngine('c1');
for (const { id, labels } of allIdentities()) idOnly.upsertIdentity(id, labels);
for (const p of policies()) idOnly.upsertPolicy(p);
const heapIdOnly = heap() - heapBefore;
const identities = CLUSTERS.length * PER_CLUSTER;

// one new remote identity at a time; it matches many selectors (app-0..3 of ns-0..49 are popular)
const CHANGES = 2000;
const incremental: number[] = [];
let touched = 0;
for (let k = 0; k < CHANGES; k++) {
  const c = 1 + (k % 3);
  const i = k % PER_CLUSTER;
  const id = identityId(c, PER_CLUSTER + k);
  const labels = identityLabels(CLUSTERS[c]!, i, `k${k}`);
  const t0 = process.hrtime.bigint();
  const deltas = engine.upsertIdentity(id, labels);
  incremental.push(ms(t0));
  touched += deltas.length;
}

// baseline: the same kind of change, then every endpoint recomputed from scratch and diffed
const BASELINE_CHANGES = 5;
const naive: number[] = [];
const previous = new Map(
  engine.endpointNames().map((n) => [n, new Set(engine.policyOf(n).entries.map(entryKey))]),
);
for (let k = 0; k < BASELINE_CHANGES; k++) {
  const c = 1 + (k % 3);
  const id = identityId(c, PER_CLUSTER + CHANGES + k);
  const labels = identityLabels(CLUSTERS[c]!, k, `n${k}`);
  const t0 = process.hrtime.bigint();
  engine.cache.upsertIdentity(id, labels);
  let changed = 0;
  for (const name of engine.endpointNames()) {
    const now = new Set(engine.fullRecompute(name).entries.map(entryKey));
    const before = previous.get(name)!;
    for (const key of now) if (!before.has(key)) changed++;
    for (const key of before) if (!now.has(key)) changed++;
    previous.set(name, now);
  }
  naive.push(ms(t0));
  if (changed < 0) throw new Error('unreachable');
}

const full = tPolicies + tEndpoints;
const p50 = pct(incremental, 50);
const p99 = pct(incremental, 99);
const naiveMedian = pct(naive, 50);
const perIdentity = heapIdOnly / identities;
console.log(`policy engine benchmark (node ${process.version})`);
console.log(
  `  mesh: ${CLUSTERS.length} clusters, ${identities} identities, 1000 policies, 200 local endpoints, ${entries} entries`,
);
console.log(
  `  load identities into the selector cache: ${fmt(tIdentities)} ms; everything from empty (identities + policies + endpoints): ${fmt(tIdentities + tPolicies + tEndpoints)} ms`,
);
console.log(
  `  full computation (policies + all endpoint entries): ${fmt(full)} ms (policies ${fmt(tPolicies)}, endpoints ${fmt(tEndpoints)})  target <= 2000 ms  ${full <= 2000 ? 'OK' : 'MISSED'}`,
);
console.log(
  `  add one remote identity -> deltas: p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, max ${fmt(Math.max(...incremental))} ms over ${CHANGES} changes (${touched} endpoint deltas)  target p99 <= 1 ms  ${p99 <= 1 ? 'OK' : 'MISSED'}`,
);
console.log(
  `  engine memory per identity (identities + selector cache, heapUsed delta): ${fmt(perIdentity)} B  target <= 2048 B  ${perIdentity <= 2048 ? 'OK' : 'MISSED'}`,
);
console.log(`  whole engine with endpoints: ${fmt((afterAll - base) / 1024 / 1024)} MiB`);
console.log(
  `  baseline recompute-every-endpoint per change: median ${fmt(naiveMedian)} ms over ${BASELINE_CHANGES} changes; incremental p50 ${fmt(p50)} ms / p99 ${fmt(p99)} ms -> ${Math.round(naiveMedian / p50)}x (p50) / ${Math.round(naiveMedian / p99)}x (p99) faster`,
);
