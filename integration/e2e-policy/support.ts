// Helpers of the policy end-to-end tests: a lab with the control plane and the kernel datapath,
// kubectl, waiting for pods and for convergence, real-packet probes between chosen pods, and the
// policy engine's verdict (`policy reachability`) on the objects the API holds.
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { loadMesh } from '../../agent/policy/load.ts';
import { parseProbe, reachability } from '../../agent/policy/reachability.ts';
import { planLab, type LabPlan } from '../lab/config.ts';
import { agentStatuses, waitForDatapathConvergence } from '../lab/convergence.ts';
import { kubectlCapture } from '../lab/kubectl.ts';
import { Lab } from '../lab/lab.ts';
import { readRecord } from '../lab/record.ts';
import { labPods, probeAllPairs, type PortProbe, type ProbeRow } from '../lab/status.ts';
import type { LabPod } from '../lab/record.ts';
import type { ProbeOptions } from '../lab/probe.ts';

export interface PolicyLab {
  lab: Lab;
  plan: LabPlan;
}

export async function upPolicyLab(
  name: string,
  clusters: { name: string; id: number; podCIDR: string; nodes: number }[],
  fullPassIntervalMs: number,
): Promise<PolicyLab> {
  // Policy on plain native routing; encryption has its own lab tests (integration/e2e-encryption).
  const plan = planLab({ name, clusters, encryption: 'none' });
  const lab = await Lab.up(plan, { datapath: 'bpf', fullPassIntervalMs });
  return { lab, plan };
}

export async function kubectl(
  plan: LabPlan,
  args: string[],
  stdin = '',
  cluster = 'c1',
): Promise<string> {
  const r = await kubectlCapture(plan, cluster, args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 60_000,
  stepMs = 150,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** The lab's running pods by `cluster/ns/name`. */
export function podsNow(plan: LabPlan): Map<string, LabPod> {
  const record = readRecord(plan.runDir);
  const pods = record ? labPods(record) : [];
  return new Map(pods.filter((p) => p.ip).map((p) => [`${p.cluster}/${p.namespace}/${p.name}`, p]));
}

/** Waits until these pods run (kubelet gave them an IP) and no others of their namespaces. */
export function waitForPods(plan: LabPlan, keys: string[], timeoutMs = 90_000): Promise<LabPod[]> {
  return until(
    `pods ${keys.join(', ')}`,
    () => {
      const now = podsNow(plan);
      const found = keys.map((k) => now.get(k));
      return found.every((p) => p !== undefined) ? (found as LabPod[]) : undefined;
    },
    timeoutMs,
  );
}

/** Every agent converged (read back); throws with what is pending otherwise. */
export async function converge(plan: LabPlan, timeoutMs = 60_000): Promise<void> {
  const r = await waitForDatapathConvergence(plan.name, timeoutMs);
  if (!r.converged) throw new Error(`lab did not converge: ${r.pending.join('; ')}`);
}

export async function statuses(plan: LabPlan): Promise<Map<string, AgentStatus>> {
  const all = await agentStatuses(plan.name);
  const out = new Map<string, AgentStatus>();
  for (const [node, s] of all) {
    if (!s) throw new Error(`agent of ${node} did not answer status`);
    out.set(node, s);
  }
  return out;
}

/**
 * Waits until every agent of `cluster` enforces exactly `count` policies and the lab's datapath
 * converged on them: a policy applied (or deleted) with kubectl is in every node's maps on return.
 */
export async function policiesInForce(
  plan: LabPlan,
  count: number,
  cluster = 'c1',
  timeoutMs = 60_000,
): Promise<void> {
  const nodes = new Set(plan.clusters.find((c) => c.name === cluster)!.nodes.map((n) => n.name));
  await until(
    `${count} policies enforced by every agent of ${cluster}`,
    async () => {
      const mine = [...(await statuses(plan))].filter(([node]) => nodes.has(node));
      return mine.every(([, s]) => s.policies.enforced === count) ? true : undefined;
    },
    timeoutMs,
  );
  await converge(plan, timeoutMs);
}

/** Real packets between every ordered pair of `pods` (no convergence wait: callers decide). */
export async function probeRows(
  pods: LabPod[],
  ports: PortProbe[],
  opts?: ProbeOptions,
): Promise<ProbeRow[]> {
  const rows = await probeAllPairs(pods, ports, opts);
  return rows.sort(byKey);
}

/** `policy reachability` on the objects the cluster's API holds now, for these pods and probes. */
export async function engineRows(
  plan: LabPlan,
  pods: LabPod[],
  ports: PortProbe[],
  cluster = 'c1',
): Promise<ProbeRow[]> {
  const list = JSON.parse(
    await kubectl(
      plan,
      [
        'get',
        'namespaces,pods,networkpolicies,ciliumnetworkpolicies,ciliumclusterwidenetworkpolicies',
        '-A',
        '-o',
        'json',
      ],
      '',
      cluster,
    ),
  ) as { items: { kind: string; metadata: { name: string; namespace?: string } }[] };
  const wanted = new Set(pods.map((p) => `${p.namespace}/${p.name}`));
  const namespaces = new Set(pods.map((p) => p.namespace));
  const items = list.items.filter(
    (o) =>
      (o.kind !== 'Pod' || wanted.has(`${o.metadata.namespace}/${o.metadata.name}`)) &&
      (o.kind !== 'Namespace' || namespaces.has(o.metadata.name)),
  );
  const id = plan.clusters.find((c) => c.name === cluster)!.id;
  const text = JSON.stringify({
    kind: 'List',
    items: [{ kind: 'Cluster', metadata: { name: cluster }, spec: { id } }, ...items],
  });
  const rows = reachability(
    loadMesh([{ cluster, file: 'lab objects', text }]),
    ports.map((p) => parseProbe(`${p.port}/${p.protocol}`)),
  );
  return rows.map((r) => ({ ...r, protocol: r.protocol as ProbeRow['protocol'] })).sort(byKey);
}

export const rowKey = (r: { from: string; to: string; port: number; protocol: string }): string =>
  `${r.from} -> ${r.to} ${r.port}/${r.protocol}`;

function byKey(a: ProbeRow, b: ProbeRow): number {
  return rowKey(a).localeCompare(rowKey(b));
}

/** Rows where packets and the engine disagree, readable in an assertion message. */
export function disagreements(packets: ProbeRow[], engine: ProbeRow[]): string[] {
  const want = new Map(engine.map((r) => [rowKey(r), r]));
  const out: string[] = [];
  for (const p of packets) {
    const e = want.get(rowKey(p));
    if (!e) out.push(`${rowKey(p)}: no engine row`);
    else if (e.allowed !== p.allowed)
      out.push(
        `${rowKey(p)}: packets ${p.allowed ? 'allowed' : 'dropped'} (${p.reason}), engine ${e.allowed ? 'allows' : 'denies'} (${e.reason})`,
      );
  }
  if (packets.length !== engine.length)
    out.push(`${packets.length} probe rows, ${engine.length} engine rows`);
  return out;
}

export function podYaml(
  ns: string,
  name: string,
  labels: Record<string, string>,
  ports: { port: number; protocol: 'TCP' | 'UDP'; name?: string }[],
  nodeName?: string,
): string {
  return `apiVersion: v1
kind: Pod
metadata:
  name: "${name}"
  namespace: "${ns}"
  labels: ${JSON.stringify(labels)}
spec:
${nodeName ? `  nodeName: ${nodeName}\n` : ''}  containers:
  - name: main
    image: echo
    ports: ${JSON.stringify(
      ports.map((p) => ({
        containerPort: p.port,
        protocol: p.protocol,
        ...(p.name && { name: p.name }),
      })),
    )}
---
`;
}
