// Starting the lab kubelet of a cluster (integration/kubelet): one process per cluster, inside
// the cluster's control-plane namespace, talking to its API server over the underlay.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeletConfig } from '../kubelet/types.ts';
import type { ClusterPlan, LabPlan } from './config.ts';
import { controlPlanePaths } from './control-plane.ts';
import { cmdlineOf, isZombieOrGone, spawnDetached } from './processes.ts';
import { nodeEntry, repoRoot, writeRecord, type LabRecord } from './record.ts';

export function writeKubeletConfig(plan: LabPlan, cluster: ClusterPlan): string {
  const paths = controlPlanePaths(plan, cluster);
  const config: KubeletConfig = {
    lab: plan.name,
    cluster: cluster.name,
    apiAddress: paths.apiAddress,
    nodes: cluster.nodes,
    stateFile: paths.kubeletState,
  };
  writeFileSync(paths.kubeletConfig, JSON.stringify(config, null, 1));
  return paths.kubeletConfig;
}

/** Starts (or restarts) a cluster's kubelet; returns its PID. */
export function spawnKubelet(plan: LabPlan, cluster: ClusterPlan): number {
  const paths = controlPlanePaths(plan, cluster);
  const argv = [
    'nsenter',
    `--net=/run/netns/${cluster.controlPlane.netns}`,
    '--',
    ...nodeEntry('integration/kubelet/main.ts'),
    '--config',
    paths.kubeletConfig,
  ];
  return spawnDetached(argv, paths.kubeletLog, repoRoot()).pid;
}

/** Whether the kubelet process `pid` of this cluster runs. */
export function kubeletAlive(
  plan: LabPlan,
  cluster: ClusterPlan,
  pid: number | undefined,
): boolean {
  if (!pid || isZombieOrGone(pid)) return false;
  const cmd = cmdlineOf(pid);
  // empty while nsenter execs node; otherwise it must name this cluster's kubelet config
  return cmd === '' || !!cmd?.includes(controlPlanePaths(plan, cluster).kubeletConfig);
}

/** Waits for the kubelet's ready line written after `fromOffset` of its log. */
export async function waitForKubelet(
  plan: LabPlan,
  cluster: ClusterPlan,
  pid: number,
  fromOffset: number,
  timeoutMs: number,
): Promise<void> {
  const log = controlPlanePaths(plan, cluster).kubeletLog;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(log, 'utf8').slice(fromOffset);
    if (text.includes('"event":"ready"')) return;
    if (!kubeletAlive(plan, cluster, pid) || Date.now() > deadline)
      throw new Error(
        `kubelet of cluster ${cluster.name} ${Date.now() > deadline ? `not ready after ${timeoutMs} ms` : 'exited'}; log tail:\n${text.slice(-2000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function logSize(file: string): number {
  try {
    return readFileSync(file).length;
  } catch {
    return 0;
  }
}

/** Starts every cluster's kubelet and waits until each registered its nodes. */
export async function startKubelets(
  record: LabRecord,
  progress: (line: string) => void,
): Promise<void> {
  record.kubelets = [];
  for (const cluster of record.plan.clusters) {
    writeKubeletConfig(record.plan, cluster);
    record.kubelets.push({ cluster: cluster.name, pid: spawnKubelet(record.plan, cluster) });
    writeRecord(record);
  }
  progress('kubelets: registering nodes');
  await Promise.all(
    record.plan.clusters.map((cluster, i) =>
      waitForKubelet(record.plan, cluster, record.kubelets![i]!.pid, 0, 60_000),
    ),
  );
}
