// net-tool.py (agent/datapath/test/net-tool.py: connect, send, stream and "whoami" questions the
// lab echo server answers with the pod's IP) run inside a lab namespace, bounded in time, its JSON
// lines collected. The demo, the end-to-end tests and the benchmarks all drive traffic with it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './record.ts';

export type NetToolLine = Record<string, unknown>;

/** Where net-tool.py is (also for long-running modes started by the tests themselves). */
export const netToolPath = (): string => join(repoRoot(), 'agent/datapath/test/net-tool.py');

export interface NetnsRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command inside a network namespace (nsenter --net), killed after timeoutMs. */
export function runInNetns(
  netnsPath: string,
  argv: string[],
  timeoutMs: number,
): Promise<NetnsRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs net-tool.py in a namespace to completion (killed after timeoutMs); every line it printed. */
export async function netTool(
  netnsPath: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<NetToolLine[]> {
  const run = await runInNetns(netnsPath, ['python3', netToolPath(), ...args], timeoutMs);
  if (run.code !== 0)
    throw new Error(`net-tool ${args.join(' ')} exited ${run.code}: ${run.stderr.trim()}`);
  return run.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as NetToolLine);
}

/** The last line of a run (its summary); a run that printed nothing is an error. */
export async function lastLine(run: Promise<NetToolLine[]>): Promise<NetToolLine> {
  const lines = await run;
  const last = lines.at(-1);
  if (!last) throw new Error('net-tool printed no line: see its stderr in the exit error');
  return last;
}
