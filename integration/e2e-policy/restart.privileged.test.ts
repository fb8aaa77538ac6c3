// Restarts and drift on one lab (one cluster, two nodes, kernel datapath, a 3 s full pass):
// an agent restart and an API server restart in the middle of a test change nothing a probe can
// see; a policy-map entry written behind the agent's back makes real packets disagree with
// `policy reachability` (and `agent status` say not converged) until the agent's full pass
// repairs it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { Protocol } from '../../agent/policy/entry.ts';
import { openNodeMaps } from '../e2e/node-maps.ts';
import { downLab } from '../lab/lab.ts';
import { labLeftovers, rootFootprint } from '../lab/leftovers.ts';
import type { LabPod } from '../lab/record.ts';
import type { ProbeRow } from '../lab/status.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import {
  converge,
  disagreements,
  engineRows,
  kubectl,
  podYaml,
  probeRows,
  statuses,
  until,
  upPolicyLab,
  waitForPods,
  type PolicyLab,
} from './support.ts';

const name = uniqueLabName('erst');
let env: PolicyLab | undefined;
let pods: LabPod[] = [];
let baseline: ProbeRow[] = [];
const PROBES = [
  { port: 80, protocol: 'TCP' as const },
  { port: 80, protocol: 'UDP' as const },
];
const FULL_PASS_MS = 3000;

test.before(async () => {
  await ensureBuilt();
  env = await upPolicyLab(
    name,
    [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
    FULL_PASS_MS,
  );
  const ports = [
    { port: 80, protocol: 'TCP' as const, name: 'http' },
    { port: 80, protocol: 'UDP' as const, name: 'dns' },
  ];
  await kubectl(
    env.plan,
    ['apply', '-f', '-'],
    `apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: http}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c-egress, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: c}}
  egress: [{toEndpoints: [{matchLabels: {app: a}}], toPorts: [{ports: [{port: "80", protocol: UDP}]}]}]
---
${podYaml('x', 'a', { app: 'a' }, ports, 'c1-node1')}${podYaml('x', 'b', { app: 'b' }, ports, 'c1-node2')}${podYaml('x', 'c', { app: 'c' }, ports, 'c1-node1')}`,
  );
  pods = await waitForPods(env.plan, ['c1/x/a', 'c1/x/b', 'c1/x/c']);
  await converge(env.plan);
  baseline = await probeRows(pods, PROBES);
});

test.after.always(async () => {
  await downLab(name);
});

test.serial(
  'the baseline: packets equal policy reachability, some allowed, some dropped',
  async (t) => {
    t.deepEqual(disagreements(baseline, await engineRows(env!.plan, pods, PROBES)), []);
    t.true(baseline.some((r) => r.allowed));
    t.true(baseline.some((r) => !r.allowed));
  },
);

/** Probe rounds while `disturb` runs, and one after; every round must equal the baseline. */
async function probesDuring(
  disturb: () => Promise<void>,
): Promise<{ rounds: number; diffs: string[] }> {
  let done = false;
  const diffs: string[] = [];
  let rounds = 0;
  const loop = (async () => {
    // bounded: at most 30 rounds, and one more once the disturbance is over
    while (rounds < 30) {
      const last = done;
      const rows = await probeRows(pods, PROBES);
      rounds++;
      diffs.push(...disagreements(rows, baseline).map((d) => `round ${rounds}: ${d}`));
      if (last) break;
    }
  })();
  try {
    await disturb();
  } finally {
    done = true;
  }
  await loop;
  return { rounds, diffs };
}

test.serial(
  'an agent restart in the middle of probing changes nothing a probe can see',
  async (t) => {
    const before = await statuses(env!.plan);
    for (const node of ['c1-node2', 'c1-node1']) {
      const { rounds, diffs } = await probesDuring(() => env!.lab.restartAgent(node));
      t.deepEqual(diffs, [], `restart of ${node}`);
      t.true(rounds >= 2, `${rounds} probe rounds during and after the restart of ${node}`);
    }
    await converge(env!.plan);
    const after = await statuses(env!.plan);
    const ids = (st: typeof before) =>
      [...st.values()].flatMap((s) => s.endpoints.map((e) => `${e.pod}=${e.identity}`)).sort();
    t.deepEqual(ids(after), ids(before), 'same endpoints with the same identities');
  },
);

test.serial(
  'an API server restart in the middle of probing changes nothing; agents follow it again',
  async (t) => {
    const { rounds, diffs } = await probesDuring(() => env!.lab.restartApiServer('c1'));
    t.deepEqual(diffs, []);
    t.true(rounds >= 2);
    // the agents watch the new server: a policy change after the restart is enforced
    await kubectl(env!.plan, ['delete', 'networkpolicy', '-n', 'x', 'b-from-a']);
    await converge(env!.plan);
    const open = await probeRows(pods, PROBES);
    t.deepEqual(disagreements(open, await engineRows(env!.plan, pods, PROBES)), []);
    t.true(
      open.find((r) => r.from === 'c1/x/a' && r.to === 'c1/x/b' && r.protocol === 'UDP')!.allowed,
    );
    await kubectl(
      env!.plan,
      ['apply', '-f', '-'],
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: http}]}]
`,
    );
    await converge(env!.plan);
    t.deepEqual(disagreements(await probeRows(pods, PROBES), baseline), []);
  },
);

test.serial(
  'a policy entry changed behind the agent: packets disagree until the full pass repairs it',
  async (t) => {
    const { plan } = env!;
    const node2 = plan.clusters[0]!.nodes.find((n) => n.name === 'c1-node2')!;
    const st = (await statuses(plan)).get('c1-node2')!;
    const b = st.endpoints.find((e) => e.pod === 'x/b')!;
    const aIdentity = [...(await statuses(plan)).values()]
      .flatMap((s) => s.endpoints)
      .find((e) => e.pod === 'x/a')!.identity;
    const aToB = (rows: ProbeRow[]) =>
      rows.find((r) => r.from === 'c1/x/a' && r.to === 'c1/x/b' && r.protocol === 'UDP')!;
    t.false(aToB(baseline).allowed, 'a may reach b on TCP 80 only, not UDP 80');

    // right after a full pass, so the tampering stands for about one period
    const passAt = st.lastFullPass!.at;
    await until(
      'a fresh full pass',
      async () => {
        const s = (await statuses(plan)).get('c1-node2')!;
        return s.lastFullPass!.at !== passAt ? s : undefined;
      },
      10_000,
      50,
    );
    const maps = openNodeMaps(node2);
    try {
      const entries = maps.policy.read(b.id);
      maps.policy.replace(b.id, [
        ...entries,
        {
          direction: 'ingress',
          peer: aIdentity,
          protocol: Protocol.UDP,
          port: 80,
          portPrefixLen: 16,
          deny: false,
        },
      ]);
    } finally {
      maps.close();
    }
    const drifted = (await statuses(plan)).get('c1-node2')!;
    t.false(drifted.converged, 'agent status reads the maps back and sees the drift');
    t.false(drifted.endpoints.find((e) => e.pod === 'x/b')!.converged);
    const pair = pods.filter((p) => p.name === 'a' || p.name === 'b');
    const during = await probeRows(pair, [PROBES[1]!], { timeoutMs: 400, confirmRetries: 0 });
    t.true(aToB(during).allowed, 'real packets follow the tampered map, not the policy');
    const engine = await engineRows(plan, pair, [PROBES[1]!]);
    t.false(aToB(engine).allowed, 'policy reachability still says denied');

    // the full pass repairs it: converged again, and packets agree with the engine
    await converge(plan, 3 * FULL_PASS_MS + 5000);
    const after = await probeRows(pair, [PROBES[1]!]);
    t.deepEqual(disagreements(after, engine), []);
    const log = readFileSync(join(node2.dir, 'agent.log'), 'utf8');
    t.regex(log, /policy maps drifted from the desired state: repairing/);
  },
);

test.serial('the lab comes down without leftovers', async (t) => {
  await env!.lab.down();
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(env!.plan), []);
});
