// `isthmus lab up` runs the lab in a detached supervisor process, so the command returns once the
// lab is ready while the lab keeps running. The supervisor builds the lab (Lab.up), relays
// progress over a pipe to the command that started it, then watches the cluster kubelets and
// starts a dead one again. Its death harms nothing: the lab's processes are detached, recorded
// by PID, and `lab down` (downLab) removes everything from the lab's name alone.
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RUN_ROOT, type LabPlan } from './config.ts';
import { Lab, LabError, SUPERVISOR_MARKER } from './lab.ts';
import { listNetns } from './netns.ts';
import { nodeEntry, repoRoot } from './record.ts';

const READY_LINE = 'lab ready';

/** Names of the labs on this machine: run dirs with a record, or underlay namespaces left behind. */
export async function labNames(): Promise<string[]> {
  const names = new Set<string>();
  if (existsSync(RUN_ROOT))
    for (const d of readdirSync(RUN_ROOT))
      if (existsSync(join(RUN_ROOT, d, 'lab.json'))) names.add(d);
  for (const ns of await listNetns()) if (ns.endsWith('-underlay')) names.add(ns.slice(0, -9));
  return [...names].sort();
}

/** `--name` if given, else the only lab there is; a clear error otherwise. */
export async function resolveLabName(name: string | undefined): Promise<string> {
  if (name) return name;
  const names = await labNames();
  if (names.length === 1) return names[0]!;
  throw new LabError(
    names.length === 0
      ? 'no lab is running: start one with `isthmus lab up`'
      : `several labs run (${names.join(', ')}): choose one with --name`,
    'ISTHMUS_LAB_POD',
  );
}

/**
 * Starts the supervisor for `plan` and resolves once the lab is ready, passing each progress line
 * to `onLine`. Rejects (the lab removed by the supervisor) when the start fails.
 */
export async function upDetached(
  plan: LabPlan,
  onLine: (line: string) => void,
  timeoutMs = 300_000,
): Promise<void> {
  if ((await labNames()).includes(plan.name))
    throw new LabError(
      `lab ${plan.name} already exists: use it, or remove it with \`isthmus lab down --name ${plan.name}\``,
      'ISTHMUS_LAB_EXISTS',
    );
  mkdirSync(plan.runDir, { recursive: true });
  const planFile = join(plan.runDir, SUPERVISOR_MARKER);
  writeFileSync(planFile, JSON.stringify(plan, null, 1));
  const [node, ...entry] = nodeEntry('cli/main.ts');
  const child = spawn(node!, [...entry, 'lab', 'supervise', '--plan', planFile], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: repoRoot(),
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  const outcome = await new Promise<'ready' | 'failed' | 'timeout'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), timeoutMs);
    createInterface({ input: child.stdout }).on('line', (line) => {
      onLine(line);
      if (line === READY_LINE) {
        clearTimeout(timer);
        resolve('ready');
      }
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve('failed');
    });
  });
  child.stdout.destroy();
  child.stderr.destroy();
  child.unref();
  if (outcome !== 'ready')
    throw new LabError(
      outcome === 'timeout'
        ? `lab ${plan.name} was not ready after ${timeoutMs / 1000} s; it keeps starting in the background (see \`isthmus lab status\`), or remove it with \`isthmus lab down\``
        : `lab ${plan.name} failed to start${stderr.trim() ? `:\n${stderr.trim()}` : ''}`,
      'ISTHMUS_LAB_START',
    );
}

/** The supervisor's body (`isthmus lab supervise --plan FILE`, started by upDetached). */
export async function supervise(planFile: string, watchdogMs = 5000): Promise<void> {
  process.stdout.on('error', () => {}); // the starting command may be gone: progress is optional
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as LabPlan;
  const say = (line: string) => process.stdout.write(`${line}\n`);
  let lab: Lab;
  try {
    lab = await Lab.up(plan, {
      // the user's lab runs the real datapath: eBPF programs on every pod veth
      datapath: 'bpf',
      supervisorPid: process.pid,
      onProgress: (line) => say(`  ${line}`),
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
  say(READY_LINE);
  const log = join(plan.runDir, 'supervisor.log');
  const note = (event: string, fields: object = {}) =>
    appendFileSync(
      log,
      JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + '\n',
    );
  note('ready', { pid: process.pid });
  process.once('SIGTERM', () => process.exit(0));
  for (;;) {
    await new Promise((r) => setTimeout(r, watchdogMs));
    if (!existsSync(plan.runDir)) process.exit(0); // the lab was taken down
    const revived = await lab.reviveKubelets().catch((err: unknown) => {
      note('revive-failed', { error: String(err) });
      return [];
    });
    if (revived.length) note('kubelets-restarted', { clusters: revived });
  }
}
