// What the agent-restart end-to-end test (policy.privileged.test.ts) reads before and after the
// restarts: a one-way policy between two pods, the programs attached on every pod veth, and a
// snapshot of what a restart must leave as it was (map ids, the agent's endpoints, endpoint rows
// and policy entries); plus a bounded command run inside a pod (iperf3).
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { Protocol, type EndpointPolicy } from '../../agent/policy/entry.ts';
import type { NodePlan } from '../lab/config.ts';
import type { Lab } from '../lab/lab.ts';
import { runInNetns } from '../lab/net-tool.ts';
import type { LabPod } from '../lab/record.ts';
import type { Mesh } from './mesh.ts';
import { pinnedMapIds } from './node-maps.ts';

/** A admits nobody; B admits A on TCP 80 and `streamPort`. B's egress is open, so A's ingress
 * on A's node is the only thing between B and A. */
export function oneWay(
  m: Mesh,
  a: LabPod,
  streamPort: number,
): { a: EndpointPolicy; b: EndpointPolicy } {
  const tcp = (port: number) => ({
    direction: 'ingress' as const,
    peer: m.identityOf(a),
    protocol: Protocol.TCP,
    port,
    portPrefixLen: 16,
    deny: false,
  });
  return {
    a: { ingressEnforced: true, egressEnforced: false, entries: [], prefixes: [] },
    b: {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [tcp(80), tcp(streamPort)],
      prefixes: [],
    },
  };
}

/** Program ids attached on the pods' veths, per node (the pods of a node share one load). */
export function attachedPrograms(
  m: Mesh,
  nodes: readonly NodePlan[],
): Array<{ fromPod: number; toPod: number }> {
  return nodes.map((n) => {
    const ids = m.pods
      .filter((p) => p.node === n.name)
      .map((p) => m.node(n.name).maps.attached({ ifindex: m.hostIfindexOf(p) }))
      .map((a) => ({ fromPod: a.ingressProgramId, toPod: a.egressProgramId }));
    if (new Set(ids.map((i) => JSON.stringify(i))).size !== 1)
      throw new Error(`pods of ${n.name} run different programs: ${JSON.stringify(ids)}`);
    return ids[0]!;
  });
}

export interface PodRun {
  code: number | null;
  out: string;
}

/** Runs a command inside a pod's namespace, killed after timeoutMs; stdout and stderr together. */
export async function inPod(pod: LabPod, argv: string[], timeoutMs: number): Promise<PodRun> {
  const run = await runInNetns(pod.netnsPath, argv, timeoutMs);
  return { code: run.code, out: run.stdout + run.stderr };
}

async function agentView(lab: Lab, node: string) {
  const answer = await callAgent(endpointSocketPath(lab.node(node).stateDir), { op: 'list' });
  if (!answer.ok) throw new Error(JSON.stringify(answer));
  return answer.endpoints ?? [];
}

/** Everything a restart must leave as it was, read from the agents and the pins. */
export function restartSnapshot(lab: Lab, m: Mesh, nodes: readonly NodePlan[]) {
  return Promise.all(
    nodes.map(async (n) => ({
      node: n.name,
      mapIds: pinnedMapIds(n),
      endpoints: await agentView(lab, n.name),
      rows: [...m.node(n.name).maps.endpoints.entries()].sort(),
      policy: m.pods
        .filter((p) => p.node === n.name)
        .map((p) => m.node(n.name).maps.policy.read(m.endpointIdOf(p))),
    })),
  );
}
