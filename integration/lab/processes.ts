// Processes the lab starts (agents, pod echo servers) outlive the command that started them, so
// they are recorded by PID and ended by PID. A PID is only signalled while its command line still
// carries the lab's marker, so a recycled PID is never hit.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';

export interface Started {
  pid: number;
  /** resolves with the exit code when the process ends (only while this process is alive) */
  exited: Promise<number | null>;
}

/** Starts a detached process with stdout/stderr appended to `logFile`. */
export function spawnDetached(argv: string[], logFile: string, cwd?: string): Started {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('spawnDetached needs a command');
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, {
      detached: true,
      stdio: ['ignore', log, log],
      ...(cwd && { cwd }),
    });
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    const exited = new Promise<number | null>((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
      child.on('error', () => resolve(-1));
    });
    child.unref();
    return { pid: child.pid, exited };
  } finally {
    closeSync(log);
  }
}

export function cmdlineOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** PIDs whose command line contains any of the markers (the lab's paths). */
export function pidsMatching(markers: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const cmd = cmdlineOf(pid);
    if (cmd && markers.some((m) => cmd.includes(m))) pids.push(pid);
  }
  return pids;
}

export function isZombieOrGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; only while the command line contains `marker`. */
export async function endProcess(pid: number, marker: string, graceMs = 3000): Promise<void> {
  const cmd = cmdlineOf(pid);
  if (cmd === undefined || !cmd.includes(marker)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (isZombieOrGone(pid)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
  while (!isZombieOrGone(pid)) await new Promise((r) => setTimeout(r, 25));
}
