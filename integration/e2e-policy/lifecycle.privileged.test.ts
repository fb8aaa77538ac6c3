// The agent on Kubernetes, end to end on one lab (one cluster, two nodes, kernel datapath):
// a pod created under a policy is enforced; a relabelled pod gets a new identity and every
// affected entry changes on both nodes; an invalid policy is reported and the last good state
// stays enforced (also when a valid policy becomes invalid); a deleted policy lets traffic through
// again. Every verdict is real packets compared with `policy reachability` on the API's objects.
// Then, on the same lab (one lab less in the suite), restarts and drift (below).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { downLab } from '../lab/lab.ts';
import { labLeftovers, rootFootprint } from '../lab/leftovers.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import { openNodeMaps } from '../e2e/node-maps.ts';
import type { LabPod } from '../lab/record.ts';
import type { ProbeRow } from '../lab/status.ts';
import { Protocol } from '../../agent/policy/entry.ts';
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

const name = uniqueLabName('epl');
let env: PolicyLab | undefined;
const TCP80 = [{ port: 80, protocol: 'TCP' as const }];
/** the agents' periodic full pass; the drift test needs about one period to observe the drift */
const FULL_PASS_MS = 3000;

test.before(async () => {
  await ensureBuilt();
  env = await upPolicyLab(
    name,
    [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
    FULL_PASS_MS,
  );
});

test.after.always(async () => {
  await downLab(name);
});

const lab = (): PolicyLab => env!;
const ports = [{ port: 80, protocol: 'TCP' as const, name: 'http' }];

const ALLOW_A_TO_B = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-a-to-b, namespace: x}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: a}}}]
    ports: [{port: 80, protocol: TCP}]
`;

/** Probes the pods and asserts the packets equal the engine's verdict; returns the rows. */
async function packetsMatchEngine(t: import('ava').ExecutionContext, pods: LabPod[]) {
  await converge(lab().plan);
  const [packets, engine] = await Promise.all([
    probeRows(pods, TCP80),
    engineRows(lab().plan, pods, TCP80),
  ]);
  t.deepEqual(disagreements(packets, engine), []);
  return packets;
}

const allowed = (
  rows: { from: string; to: string; allowed: boolean }[],
  from: string,
  to: string,
) => rows.find((r) => r.from === `c1/x/${from}` && r.to === `c1/x/${to}`)?.allowed;

test.serial(
  'a pod created under a policy is enforced from its first probe, on both nodes',
  async (t) => {
    const { plan } = lab();
    await kubectl(
      plan,
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: x}}
---
${ALLOW_A_TO_B}---
${podYaml('x', 'a', { app: 'a' }, ports, 'c1-node1')}${podYaml('x', 'b', { app: 'b' }, ports, 'c1-node2')}${podYaml('x', 'c', { app: 'c' }, ports, 'c1-node1')}`,
    );
    const pods = await waitForPods(plan, ['c1/x/a', 'c1/x/b', 'c1/x/c']);
    const rows = await packetsMatchEngine(t, pods);
    t.true(allowed(rows, 'a', 'b'));
    t.false(allowed(rows, 'c', 'b'));
    t.true(allowed(rows, 'b', 'a'));

    // a second pod selected by the policy, created after it: enforced from the start
    await kubectl(plan, ['apply', '-f', '-'], podYaml('x', 'e', { app: 'b' }, ports, 'c1-node1'));
    const withE = await waitForPods(plan, ['c1/x/a', 'c1/x/b', 'c1/x/c', 'c1/x/e']);
    const rows2 = await packetsMatchEngine(t, withE);
    t.false(allowed(rows2, 'c', 'e'), 'same-node pod c is denied into the new pod e');
    t.true(allowed(rows2, 'a', 'e'));

    // status: identities from the labels, the same label set gets one identity cluster-wide
    const st = await statuses(plan);
    const eps = [...st.values()].flatMap((s) => s.endpoints);
    const byPod = new Map(eps.map((e) => [e.pod, e]));
    t.deepEqual([...byPod.keys()].sort(), ['x/a', 'x/b', 'x/c', 'x/e']);
    for (const e of eps) {
      t.true(e.identity >= (1 << 16) + 256, `${e.pod} has a cluster-1 identity, not ${e.identity}`);
      t.true(e.converged);
      t.regex(e.labels, /k8s:io\.cilium\.k8s\.namespace\.labels\.team=x;/);
    }
    t.not(byPod.get('x/a')!.identity, byPod.get('x/b')!.identity);
    t.true(byPod.get('x/b')!.ingressEnforced && byPod.get('x/e')!.ingressEnforced);
    t.false(byPod.get('x/a')!.ingressEnforced);
    for (const s of st.values()) {
      t.true(s.converged, `${s.node}: ${s.pending.join('; ')}`);
      // 4 pods + 2 node IPs + this node's router IP
      t.is(s.ipcache.size, 7);
    }
  },
);

test.serial('a relabelled pod gets a new identity; entries change on every node', async (t) => {
  const { plan } = lab();
  const before = await statuses(plan);
  const idOf = (st: typeof before, pod: string) =>
    [...st.values()].flatMap((s) => s.endpoints).find((e) => e.pod === pod)!;
  const old = idOf(before, 'x/c');
  const aId = idOf(before, 'x/a').identity;
  // a label set no pod had: a new identity, which the policy of b (app=a peers) must now admit
  await kubectl(plan, ['label', 'pod', '-n', 'x', 'c', 'app=a', 'tier=web', '--overwrite']);
  const after = await until('c relabelled', async () => {
    const st = await statuses(plan);
    return idOf(st, 'x/c').identity !== old.identity ? st : undefined;
  });
  const cId = idOf(after, 'x/c').identity;
  t.not(cId, aId, 'new labels, new identity');
  t.regex(idOf(after, 'x/c').labels, /k8s:tier=web;/);
  t.true(idOf(after, 'x/b').policyRevision > idOf(before, 'x/b').policyRevision);
  const pods = await waitForPods(plan, ['c1/x/a', 'c1/x/b', 'c1/x/c', 'c1/x/e']);
  const rows = await packetsMatchEngine(t, pods);
  t.true(allowed(rows, 'c', 'b'), 'c (now app=a) reaches b on the other node');
  t.true(allowed(rows, 'c', 'e'), 'c reaches e on its own node');

  // read the maps: both nodes map c's IP to the new identity, and the policies of b (node 2)
  // and e (node 1) hold an ingress entry for it
  const cIp = pods.find((p) => p.name === 'c')!.ip;
  for (const node of plan.clusters[0]!.nodes) {
    const st = after.get(node.name)!;
    const guarded = st.endpoints.find((e) => e.pod === 'x/b' || e.pod === 'x/e')!;
    const maps = openNodeMaps(node);
    try {
      t.is(maps.ipcache.get(`${cIp}/32`)?.identity, cId, `${node.name} ipcache row of c`);
      const peers = maps.policy.read(guarded.id).map((e) => e.peer);
      t.true(peers.includes(cId), `${node.name}: ${guarded.pod} admits c's new identity`);
      t.false(peers.includes(old.identity), `${node.name}: nothing left for c's old identity`);
    } finally {
      maps.close();
    }
  }
  // the CiliumEndpoint says so too
  const cep = JSON.parse(
    await kubectl(plan, ['get', 'ciliumendpoints', '-n', 'x', 'c', '-o', 'json']),
  );
  t.is(cep.status.identity.id, cId);
});

test.serial(
  'an invalid policy is reported with its reason; the last good state stays enforced',
  async (t) => {
    const { plan } = lab();
    const pods = await waitForPods(plan, ['c1/x/a', 'c1/x/b', 'c1/x/c', 'c1/x/e']);
    const baseline = await probeRows(pods, TCP80);
    // new and invalid: an L7 rule (Isthmus enforces L3/L4 only and refuses instead of ignoring)
    const cnp = (invalid: boolean) => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: guard-a, namespace: x}
spec:
  endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: b}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
${invalid ? '      rules: {http: [{method: GET}]}\n' : ''}`;
    await kubectl(plan, ['apply', '-f', '-'], cnp(true));
    const st = await until('invalid policy reported', async () => {
      const s = await statuses(plan);
      return [...s.values()].every((x) => x.policies.invalid.length === 1) ? s : undefined;
    });
    for (const node of plan.clusters[0]!.nodes)
      t.regex(
        readFileSync(join(node.dir, 'agent.log'), 'utf8'),
        /guard-a.*policy rejected|policy rejected.*guard-a/,
        `${node.name} logs the rejection`,
      );
    for (const s of st.values()) {
      const inv = s.policies.invalid[0]!;
      t.is(inv.key, 'CiliumNetworkPolicy/x/guard-a');
      t.regex(inv.reason, /http|rules|L7/i);
      t.false(inv.lastGoodEnforced);
    }
    t.deepEqual(await packetsMatchEngineAgainst(pods, baseline), [], 'nothing changed for packets');

    // valid now: a is isolated to ingress from b
    await kubectl(plan, ['apply', '-f', '-'], cnp(false));
    const enforced = await packetsMatchEngine(t, pods);
    t.true(allowed(enforced, 'b', 'a'));
    t.true(allowed(enforced, 'e', 'a'), 'e carries app=b');
    t.false(allowed(enforced, 'c', 'a'), 'c (app=a since the relabel) is not b');

    // and invalid again on update: the last good version stays enforced
    await kubectl(plan, ['apply', '-f', '-'], cnp(true));
    await until('update reported invalid', async () => {
      const s = await statuses(plan);
      return [...s.values()].every((x) => x.policies.invalid[0]?.lastGoodEnforced) ? s : undefined;
    });
    await converge(plan);
    t.deepEqual(await packetsMatchEngineAgainst(pods, enforced), []);
    await kubectl(plan, ['delete', 'ciliumnetworkpolicy', '-n', 'x', 'guard-a']);
    const gone = await until('invalid report gone', async () => {
      const s = await statuses(plan);
      return [...s.values()].every((x) => x.policies.invalid.length === 0) ? s : undefined;
    });
    t.truthy(gone);
  },
);

/** Real packets now compared with earlier rows (the engine would show the new object). */
async function packetsMatchEngineAgainst(
  pods: LabPod[],
  expected: { from: string; to: string; allowed: boolean }[],
) {
  await converge(lab().plan);
  const now = await probeRows(pods, TCP80);
  return disagreements(
    now,
    expected.map((r) => ({ ...r, port: 80, protocol: 'TCP' as const, reason: 'before' })),
  );
}

test.serial('a deleted policy lets traffic through again', async (t) => {
  const { plan } = lab();
  const pods = await waitForPods(plan, ['c1/x/a', 'c1/x/b', 'c1/x/c', 'c1/x/e']);
  await kubectl(plan, ['label', 'pod', '-n', 'x', 'c', 'app=c', 'tier-', '--overwrite']);
  const denied = await packetsMatchEngine(t, pods);
  t.false(allowed(denied, 'c', 'b'));
  await kubectl(plan, ['delete', 'networkpolicy', '-n', 'x', 'allow-a-to-b']);
  const rows = await packetsMatchEngine(t, pods);
  t.true(
    rows.every((r) => r.allowed),
    `every pair allowed once no policy selects anything: ${JSON.stringify(rows.filter((r) => !r.allowed))}`,
  );
  for (const s of (await statuses(plan)).values())
    t.true(s.endpoints.every((e) => !e.ingressEnforced && !e.egressEnforced));
});

// Restarts and drift, on the same lab after the lifecycle tests, in their own namespace: an
// agent restart and an API server restart in the middle of probing change nothing a probe can
// see; a policy-map entry written behind the agent's back makes real packets disagree with
// `policy reachability` (and `agent status` say not converged) until the agent's full pass
// repairs it.
const RS = 'rs';
let pods: LabPod[] = [];
let baseline: ProbeRow[] = [];
const PROBES = [
  { port: 80, protocol: 'TCP' as const },
  { port: 80, protocol: 'UDP' as const },
];

async function setUpRestartNamespace(): Promise<void> {
  const ports = [
    { port: 80, protocol: 'TCP' as const, name: 'http' },
    { port: 80, protocol: 'UDP' as const, name: 'dns' },
  ];
  await kubectl(
    lab().plan,
    ['apply', '-f', '-'],
    `apiVersion: v1
kind: Namespace
metadata: {name: ${RS}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: ${RS}}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: http}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c-egress, namespace: ${RS}}
spec:
  endpointSelector: {matchLabels: {app: c}}
  egress: [{toEndpoints: [{matchLabels: {app: a}}], toPorts: [{ports: [{port: "80", protocol: UDP}]}]}]
---
${podYaml(RS, 'a', { app: 'a' }, ports, 'c1-node1')}${podYaml(RS, 'b', { app: 'b' }, ports, 'c1-node2')}${podYaml(RS, 'c', { app: 'c' }, ports, 'c1-node1')}`,
  );
  pods = await waitForPods(lab().plan, [`c1/${RS}/a`, `c1/${RS}/b`, `c1/${RS}/c`]);
  await converge(lab().plan);
  baseline = await probeRows(pods, PROBES);
}

test.serial(
  'restarts: the baseline in a fresh namespace, packets equal policy reachability, some allowed, some dropped',
  async (t) => {
    await setUpRestartNamespace();
    t.deepEqual(disagreements(baseline, await engineRows(lab().plan, pods, PROBES)), []);
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
    const before = await statuses(lab().plan);
    for (const node of ['c1-node2', 'c1-node1']) {
      const { rounds, diffs } = await probesDuring(() => lab().lab.restartAgent(node));
      t.deepEqual(diffs, [], `restart of ${node}`);
      t.true(rounds >= 2, `${rounds} probe rounds during and after the restart of ${node}`);
    }
    await converge(lab().plan);
    const after = await statuses(lab().plan);
    const ids = (st: typeof before) =>
      [...st.values()].flatMap((s) => s.endpoints.map((e) => `${e.pod}=${e.identity}`)).sort();
    t.deepEqual(ids(after), ids(before), 'same endpoints with the same identities');
  },
);

test.serial(
  'an API server restart in the middle of probing changes nothing; agents follow it again',
  async (t) => {
    const { rounds, diffs } = await probesDuring(() => lab().lab.restartApiServer('c1'));
    t.deepEqual(diffs, []);
    t.true(rounds >= 2);
    // the agents watch the new server: a policy change after the restart is enforced
    await kubectl(lab().plan, ['delete', 'networkpolicy', '-n', RS, 'b-from-a']);
    await converge(lab().plan);
    const open = await probeRows(pods, PROBES);
    t.deepEqual(disagreements(open, await engineRows(lab().plan, pods, PROBES)), []);
    t.true(
      open.find((r) => r.from === `c1/${RS}/a` && r.to === `c1/${RS}/b` && r.protocol === 'UDP')!
        .allowed,
    );
    await kubectl(
      lab().plan,
      ['apply', '-f', '-'],
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a, namespace: ${RS}}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: http}]}]
`,
    );
    await converge(lab().plan);
    t.deepEqual(disagreements(await probeRows(pods, PROBES), baseline), []);
  },
);

test.serial(
  'a policy entry changed behind the agent: packets disagree until the full pass repairs it',
  async (t) => {
    const { plan } = lab();
    const node2 = plan.clusters[0]!.nodes.find((n) => n.name === 'c1-node2')!;
    const st = (await statuses(plan)).get('c1-node2')!;
    const b = st.endpoints.find((e) => e.pod === `${RS}/b`)!;
    const aIdentity = [...(await statuses(plan)).values()]
      .flatMap((s) => s.endpoints)
      .find((e) => e.pod === `${RS}/a`)!.identity;
    const aToB = (rows: ProbeRow[]) =>
      rows.find((r) => r.from === `c1/${RS}/a` && r.to === `c1/${RS}/b` && r.protocol === 'UDP')!;
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
    t.false(drifted.endpoints.find((e) => e.pod === `${RS}/b`)!.converged);
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
