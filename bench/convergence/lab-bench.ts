// Shared by the convergence benchmarks: a 1-cluster lab with the control plane and the kernel
// datapath, brought up, handed to the benchmark under a time bound, and always torn down (with a
// check of what was left behind); plus waiting for every agent's read-back convergence.
import { agentStatuses } from '../../integration/lab/convergence.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import { ensureBuilt, uniqueLabName } from '../../integration/lab/testing.ts';
import { upPolicyLab, type PolicyLab } from '../../integration/e2e-policy/support.ts';

export interface LabBenchOptions {
  /** lab name prefix (a unique suffix is added) */
  prefix: string;
  nodes: number;
  fullPassIntervalMs: number;
  /** the whole benchmark body must finish within this */
  timeoutMs: number;
}

/** Runs `body` against a fresh lab; the lab goes down afterwards, also on failure or timeout. */
export async function withBenchLab(
  o: LabBenchOptions,
  body: (env: PolicyLab & { name: string }) => Promise<void>,
): Promise<void> {
  await ensureBuilt();
  const name = uniqueLabName(o.prefix);
  const env = await upPolicyLab(
    name,
    [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: o.nodes }],
    o.fullPassIntervalMs,
  );
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      body({ ...env, name }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`benchmark did not finish within ${o.timeoutMs / 1000} s`)),
          o.timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await env.lab.down();
    const left = await labLeftovers(name);
    console.log(`left behind: ${left.length ? left.join(', ') : 'nothing'}`);
  }
}

/** Every agent's status converged, polled as fast as the status request allows. */
export async function allConverged(lab: string, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const st = await agentStatuses(lab, 5000);
    if ([...st.values()].every((s) => s?.converged)) return true;
  }
  return false;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
