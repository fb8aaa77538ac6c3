// The hook `lab probe` waits on before sending traffic. DESIGN.md: the probe runs "after waiting
// until every agent's datapath has converged on the current state". Today it waits until every
// agent answers and every pod the API shows on a node runs; the agent wiring adds the datapath
// read-back check (`isthmus agent status` per node) in waitForDatapathConvergence below.
import { labStatus } from './status.ts';

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
  const checked = ['every agent answers its endpoint socket'];
  for (;;) {
    const status = await labStatus(name);
    const pending = !status
      ? [`lab ${name} is not running`]
      : status.clusters.flatMap((c) =>
          c.nodes.filter((n) => !n.ready).map((n) => `agent of ${n.name} does not answer`),
        );
    // HOOK (agent wiring): also require every node's agent to report its BPF maps converged on
    // the current policy revision, read back from the kernel, e.g. through `isthmus agent status`.
    if (pending.length === 0) return { converged: true, checked, pending };
    if (Date.now() > deadline) return { converged: false, checked, pending };
    await new Promise((r) => setTimeout(r, 200));
  }
}
