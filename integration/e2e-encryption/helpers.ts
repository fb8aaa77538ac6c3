// Helpers for the encryption e2e tests: pod-side traffic (traffic.mjs in the pod's namespace),
// an underlay capture, and the agents' encryption status.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { EncryptionStatus } from '../../agent/daemon/encryption.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { runCommand } from '../../agent/routing/command.ts';
import type { LabPlan, NodePlan } from '../lab/config.ts';
import { endProcess, spawnDetached } from '../lab/processes.ts';
import type { LabPod } from '../lab/record.ts';
import { repoRoot } from '../lab/record.ts';

/** The ports every test pod serves (traffic.mjs echoes on both). */
export const HTTP_AND_DNS = [
  { port: 80, protocol: 'TCP' as const, name: 'http' },
  { port: 53, protocol: 'UDP' as const, name: 'dns' },
];

const TRAFFIC = join(repoRoot(), 'integration/e2e-encryption/traffic.mjs');

const inPodArgv = (pod: LabPod, args: string[]): string[] => [
  'nsenter',
  `--net=${pod.netnsPath}`,
  '--',
  process.execPath,
  TRAFFIC,
  ...args,
];

/** Runs one traffic mode in a pod and returns its JSON line. */
export async function inPod<T = Record<string, unknown>>(pod: LabPod, args: string[]): Promise<T> {
  const r = await runCommand(inPodArgv(pod, args));
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`traffic ${args[0]} in ${pod.name} printed no result: ${r.stdout}${r.stderr}`);
  }
}

/** A sink server in a pod, ended by its PID at cleanup. */
export async function startSink(pod: LabPod, port: number, seconds: number, logDir: string) {
  const log = join(logDir, `sink-${pod.name}-${port}.log`);
  const pid = spawnDetached(
    inPodArgv(pod, ['sink', String(port), String(seconds)]),
    log,
    repoRoot(),
  ).pid;
  const deadline = Date.now() + 10_000;
  while (!safeRead(log).includes('ready')) {
    if (Date.now() > deadline) throw new Error(`sink in ${pod.name} not ready: ${safeRead(log)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { stop: () => endProcess(pid, TRAFFIC) };
}

export { startCapture, plaintextLines, wireguardLines, type Captured } from '../lab/encryption.ts';

export async function encryptionOf(node: NodePlan): Promise<EncryptionStatus | undefined> {
  const r = await callAgent(endpointSocketPath(node.stateDir), { op: 'status' } as never, 5000);
  return (r as { status?: { encryption?: EncryptionStatus } }).status?.encryption;
}

/** Waits until every node has a configured peer for each other node. */
export async function waitForPeers(nodes: NodePlan[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await Promise.all(nodes.map((n) => encryptionOf(n).catch(() => undefined)));
    if (all.every((s) => s && s.peers.length === nodes.length - 1)) return;
    if (Date.now() > deadline)
      throw new Error(`peers not configured: ${JSON.stringify(all.map((s) => s?.peers.length))}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
