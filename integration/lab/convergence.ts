// The hook `lab probe` waits on before sending traffic. DESIGN.md: the probe runs "after waiting
// until every agent's datapath has converged on the current state": every agent answers, and
// every agent's status (the `status` request of its endpoint socket, as `isthmus agent status`)
// says converged — the API's current objects handled and the BPF maps, read back, equal to it.
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { nodesOf } from './lab.ts';
import { readRecord } from './record.ts';
import { RUN_ROOT } from './config.ts';
import { labStatus } from './status.ts';

/** Every node's agent status (undefined: the agent did not answer), by node name. */
export async function agentStatuses(
  name: string,
  timeoutMs = 10_000,
): Promise<Map<string, AgentStatus | undefined>> {
  const record = readRecord(`${RUN_ROOT}/${name}`);
  const nodes = record ? nodesOf(record.plan) : [];
  const answers = await Promise.all(
    nodes.map((n) =>
      callAgent(endpointSocketPath(n.stateDir), { op: 'status' }, timeoutMs).catch(() => undefined),
    ),
  );
  return new Map(
    nodes.map((n, i) => {
      const a = answers[i];
      return [n.name, a?.ok ? (a.status as AgentStatus | undefined) : undefined];
    }),
  );
}

export interface ConvergenceReport {
  converged: boolean;
  /** what was checked, for the user */
  checked: string[];
  /** why it did not converge in time */
  pending: string[];
}

export async function waitForDatapathConvergence(
  name: string,
  timeoutMs = 30_000,
): Promise<ConvergenceReport> {
  const deadline = Date.now() + timeoutMs;
  const checked = [
    'every agent answers its endpoint socket',
    "every agent's BPF maps, read back, equal the state computed from the API's current objects",
    'with encryption: every node published its key and handshaked with every other node',
  ];
  for (;;) {
    const status = await labStatus(name);
    const pending = !status
      ? [`lab ${name} is not running`]
      : status.clusters.flatMap((c) =>
          c.nodes.filter((n) => !n.ready).map((n) => `agent of ${n.name} does not answer`),
        );
    if (pending.length === 0 && status) {
      const clusterSize = new Map(
        status.clusters.flatMap((c) => c.nodes.map((n) => [n.name, c.nodes.length] as const)),
      );
      for (const [node, st] of await agentStatuses(name)) {
        if (!st) pending.push(`agent of ${node} does not answer status`);
        else if (!st.converged)
          pending.push(`agent of ${node} not converged: ${st.pending.slice(0, 3).join('; ')}`);
        else {
          // every other node of its cluster, and every remote node the mesh gave it
          const others = (clusterSize.get(node) ?? 1) - 1 + (st.clustermesh?.nodes.length ?? 0);
          pending.push(...encryptionPending(node, st, others));
        }
      }
    }
    if (pending.length === 0) return { converged: true, checked, pending };
    if (Date.now() > deadline) return { converged: false, checked, pending };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Strict mode drops pod traffic to a node without a peer, so probing before every peer is
 * configured on both ends would read as policy drops (and a one-sided handshake retries in 5 s). */
function encryptionPending(node: string, st: AgentStatus, otherNodes: number): string[] {
  const enc = st.encryption;
  if (!enc) return [];
  if (!enc.published) return [`agent of ${node} has not published its WireGuard key`];
  const ready = enc.peers.filter((p) => p.ready).length;
  if (ready < otherNodes)
    return [`agent of ${node} has ${ready} of ${otherNodes} WireGuard peers handshaked`];
  return [];
}
