// The upstream NetworkPolicy truth tables (agent/policy/conformance) replayed with real packets on
// ONE lab: cluster c1 of two nodes, namespaces x, y, z with pods a, b, c serving ports 80 and 81
// on TCP and UDP. Case after case, step after step: the step's namespaces, pod labels and
// policies are applied with kubectl (the previous state's extra policies deleted), the agents
// converge, and real-packet rows between the case's pods must equal `policy reachability` on the
// same objects — and the upstream expectation. SCTP cases are left out: the lab's echo server and
// prober speak TCP and UDP only.
import test, { type ExecutionContext } from 'ava';
import { loadMesh } from '../../agent/policy/load.ts';
import { reachability } from '../../agent/policy/reachability.ts';
import {
  CILIUM_CASES,
  expectedRows,
  fullPod,
  stepSources,
  UPSTREAM_CASES,
  type ConformanceCase,
} from '../../agent/policy/conformance/index.ts';
import { parseAllDocuments } from 'yaml';
import { downLab } from '../lab/lab.ts';
import { labLeftovers, rootFootprint } from '../lab/leftovers.ts';
import type { LabPod } from '../lab/record.ts';
import type { PortProbe, ProbeRow } from '../lab/status.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import {
  converge,
  disagreements,
  kubectl,
  podYaml,
  probeRows,
  rowKey,
  upPolicyLab,
  waitForPods,
  type PolicyLab,
} from './support.ts';

const name = uniqueLabName('econf');
let env: PolicyLab | undefined;
const NAMESPACES = ['x', 'y', 'z'];
const POD_NAMES = ['a', 'b', 'c'];
const LAB_PODS = NAMESPACES.flatMap((ns) => POD_NAMES.map((p) => `${ns}/${p}`));
const PROBE_OPTS = { timeoutMs: 400, confirmRetries: 1 };
const POLICY_KINDS = new Set([
  'NetworkPolicy',
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
]);

test.before(async () => {
  await ensureBuilt();
  env = await upPolicyLab(name, [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }], 2000);
});

test.after.always(async () => {
  await downLab(name);
});

/** What the lab holds now, so each step only sends differences. */
interface LabState {
  pods: Map<string, LabPod>;
  labels: Map<string, Record<string, string>>;
  policies: Set<string>;
}

const ports = [80, 81].flatMap((port) =>
  (['TCP', 'UDP'] as const).map((protocol) => ({
    port,
    protocol,
    name: `serve-${port}-${protocol.toLowerCase()}`,
  })),
);

async function startPods(env: PolicyLab): Promise<LabState> {
  const nodes = env.plan.clusters[0]!.nodes.map((n) => n.name);
  const docs = NAMESPACES.map(
    (ns) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: "${ns}"}\n---\n`,
  ).join('');
  const pods = LAB_PODS.map((p, i) => {
    const [ns, pod] = p.split('/') as [string, string];
    return podYaml(ns, pod, { pod }, ports, nodes[i % nodes.length]);
  }).join('');
  await kubectl(env.plan, ['apply', '-f', '-'], docs + pods);
  const running = await waitForPods(
    env.plan,
    LAB_PODS.map((p) => `c1/${p}`),
  );
  return {
    pods: new Map(running.map((p) => [`c1/${p.namespace}/${p.name}`, p])),
    labels: new Map(LAB_PODS.map((p) => [`c1/${p}`, { pod: p.split('/')[1]! }])),
    policies: new Set(),
  };
}

const policyRef = (o: { kind: string; metadata: { name: string; namespace?: string } }) =>
  o.metadata.namespace
    ? `${o.kind.toLowerCase()}/${o.metadata.name} -n ${o.metadata.namespace}`
    : `${o.kind.toLowerCase()}/${o.metadata.name}`;

type Doc = {
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

/** Brings the lab to the state of one step: namespaces, pod labels, exactly the step's policies. */
async function applyStep(env: PolicyLab, state: LabState, c: ConformanceCase, step: number) {
  const ips = new Map([...state.pods].map(([k, p]) => [k, p.ip]));
  const docs = localSources(c, step, ips).flatMap((s) =>
    parseAllDocuments(s.text).map((d) => d.toJSON() as Doc),
  );
  const namespaces = docs.filter((d) => d.kind === 'Namespace');
  const policies = docs.filter((d) => POLICY_KINDS.has(d.kind));
  // labels of every lab pod: the case's for its pods, the base label for the others
  const wanted = new Map<string, Record<string, string>>(
    LAB_PODS.map((p) => [`c1/${p}`, { pod: p.split('/')[1]! }]),
  );
  for (const d of docs.filter((x) => x.kind === 'Pod'))
    wanted.set(`c1/${d.metadata.namespace}/${d.metadata.name}`, d.metadata.labels ?? {});
  // one kubectl per changed pod and per namespace of stale policies, all at once: the steps only
  // need the end state, and converge() below waits for the agents to reach it
  const relabels = [...wanted]
    .filter(
      ([pod, labels]) => JSON.stringify(state.labels.get(pod) ?? {}) !== JSON.stringify(labels),
    )
    .map(([pod, labels]) => relabel(env, state, pod, labels));
  const keep = new Set(policies.map(policyRef));
  const stale = [...state.policies].filter((p) => !keep.has(p));
  const staleByNamespace = new Map<string, string[]>();
  for (const ref of stale) {
    const [what, , ns = ''] = ref.split(' ') as [string, string?, string?];
    staleByNamespace.set(ns, [...(staleByNamespace.get(ns) ?? []), what]);
  }
  const deletes = [...staleByNamespace].map(([ns, refs]) =>
    kubectl(env.plan, ['delete', ...refs, ...(ns ? ['-n', ns] : []), '--ignore-not-found']),
  );
  // YAML documents in JSON form: every string quoted (kubectl's YAML reads a bare `y` as true)
  const docsYaml = [...namespaces, ...policies].map((d) => `---\n${JSON.stringify(d)}\n`);
  const apply = kubectl(env.plan, ['apply', '-f', '-'], docsYaml.join(''));
  await Promise.all([...relabels, ...deletes, apply]);
  for (const ref of stale) state.policies.delete(ref);
  for (const ref of keep) state.policies.add(ref);
  return { ips };
}

/** Sets exactly `labels` on a lab pod (the ones it has and should not are removed). */
async function relabel(
  env: PolicyLab,
  state: LabState,
  pod: string,
  labels: Record<string, string>,
): Promise<void> {
  const cur = state.labels.get(pod) ?? {};
  const [, ns, podName] = pod.split('/') as [string, string, string];
  const set = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const drop = Object.keys(cur)
    .filter((k) => !(k in labels))
    .map((k) => `${k}-`);
  await kubectl(env.plan, ['label', 'pod', '-n', ns, podName, '--overwrite', ...set, ...drop]);
  state.labels.set(pod, labels);
}

/** `policy reachability` on the step's objects for the case's pods. */
function engineRows(
  c: ConformanceCase,
  step: number,
  ips: Map<string, string>,
  probes: PortProbe[],
) {
  const mesh = loadMesh(localSources(c, step, ips));
  return reachability(mesh, probes).map((r) => ({
    ...r,
    protocol: r.protocol as ProbeRow['protocol'],
  }));
}

/** The lab is one cluster: c1's objects only (other clusters' pods are not probed). */
function localSources(c: ConformanceCase, step: number, ips: Map<string, string>) {
  return stepSources(c, step, ips).filter((s) => s.cluster === 'c1');
}

const localPods = (c: ConformanceCase) => c.pods.map(fullPod).filter((p) => p.startsWith('c1/'));

let state: LabState | undefined;

/** Replays cases step by step; returns the number of real-packet rows compared. */
async function replay(t: ExecutionContext, cases: ConformanceCase[]): Promise<number> {
  state ??= await startPods(env!);
  let probed = 0;
  for (const c of cases) {
    for (let step = 0; step < c.steps.length; step++) {
      const { ips } = await applyStep(env!, state, c, step);
      await converge(env!.plan);
      const probes = c.steps[step]!.probes.map((p) => ({
        port: p.port,
        protocol: p.protocol as 'TCP' | 'UDP',
      }));
      const pods = localPods(c).map((p) => state!.pods.get(p)!);
      const packets = await probeRows(pods, probes, PROBE_OPTS);
      const engine = engineRows(c, step, ips, probes);
      const where = `${c.name} (step ${step + 1})`;
      t.deepEqual(disagreements(packets, engine), [], `${where}: packets vs policy reachability`);
      for (const check of c.steps[step]!.probes) {
        const truth = new Map(expectedRows(c, check).map((r) => [`${r.from} ${r.to}`, r.allowed]));
        const wrong = packets
          .filter((r) => r.port === check.port && r.protocol === check.protocol)
          .filter((r) => truth.get(`${r.from} ${r.to}`) !== r.allowed)
          .map(rowKey);
        t.deepEqual(wrong, [], `${where}: packets vs the expected truth table`);
      }
      probed += packets.length;
    }
  }
  return probed;
}

const noSctp = (c: ConformanceCase) =>
  !c.steps.some((s) => s.probes.some((p) => p.protocol === 'SCTP'));
const upstream = UPSTREAM_CASES.filter(noSctp);

test.serial(
  `upstream truth tables on real packets (${upstream.length} of ${UPSTREAM_CASES.length} cases; SCTP left out)`,
  async (t) => {
    t.timeout(8 * 60_000);
    const started = Date.now();
    const rows = await replay(t, upstream);
    t.true(rows > 400);
    t.log(
      `${upstream.length} cases, ${rows} real-packet rows in ${Math.round((Date.now() - started) / 1000)} s`,
    );
  },
);

test.serial(
  `Cilium policy cases (CNP, CCNP, CIDR, entities, deny) on the local cluster's pods (${CILIUM_CASES.filter(noSctp).length} cases)`,
  async (t) => {
    t.timeout(4 * 60_000);
    const started = Date.now();
    const rows = await replay(t, CILIUM_CASES.filter(noSctp));
    t.true(rows > 50);
    t.log(`${rows} real-packet rows in ${Math.round((Date.now() - started) / 1000)} s`);
  },
);

test.serial('the lab comes down without leftovers', async (t) => {
  await env!.lab.down();
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(env!.plan), []);
});
