// `lab kubectl`: the machine's kubectl run inside a cluster's control-plane namespace with the
// cluster's kubeconfig (the API server's TCP address lives there; the root namespace has no route).
import { spawn } from 'node:child_process';
import type { LabPlan } from './config.ts';
import { controlPlanePaths } from './control-plane.ts';
import { LabError } from './lab.ts';
import { netnsPath } from './netns.ts';

export const KUBECTL = '/usr/bin/kubectl';

export function kubectlArgv(plan: LabPlan, cluster: string, args: readonly string[]): string[] {
  const c = plan.clusters.find((x) => x.name === cluster);
  if (!c)
    throw new LabError(
      `lab ${plan.name} has no cluster ${cluster} (clusters: ${plan.clusters.map((x) => x.name).join(', ')})`,
      'ISTHMUS_LAB_POD',
    );
  const { kubeconfig } = controlPlanePaths(plan, c);
  return [
    'nsenter',
    `--net=${netnsPath(c.controlPlane.netns)}`,
    '--',
    KUBECTL,
    '--kubeconfig',
    kubeconfig,
    ...args,
  ];
}

/** Runs kubectl with the terminal's stdio (stdin passes through, so `-f -` works); its exit code. */
export function kubectlInteractive(
  plan: LabPlan,
  cluster: string,
  args: readonly string[],
): Promise<number> {
  const [cmd, ...rest] = kubectlArgv(plan, cluster, args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, rest, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Runs kubectl with `stdin` as its input and captures its output. */
export function kubectlCapture(
  plan: LabPlan,
  cluster: string,
  args: readonly string[],
  stdin = '',
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...rest] = kubectlArgv(plan, cluster, args);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}
