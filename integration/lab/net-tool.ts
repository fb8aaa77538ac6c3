// net-tool.py (agent/datapath/test/net-tool.py: connect, send, stream and "whoami" questions the
// lab echo server answers with the pod's IP) run inside a lab namespace, bounded in time, its JSON
// lines collected. The demo, the end-to-end tests and the benchmarks all drive traffic with it.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from './record.ts';

export type NetToolLine = Record<string, unknown>;

/** Where net-tool.py is (also for long-running modes started by the tests themselves). */
export const netToolPath = (): string => join(repoRoot(), 'agent/datapath/test/net-tool.py');

/** Runs net-tool.py in a namespace to completion (killed after timeoutMs); every line it printed. */
export function netTool(
  netnsPath: string,
  args: string[],
  timeoutMs = 30_000,
): Promise<NetToolLine[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, 'python3', netToolPath(), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0)
        return reject(new Error(`net-tool ${args.join(' ')} exited ${code}: ${err.trim()}`));
      resolve(
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as NetToolLine),
      );
    });
  });
}

/** The last line of a run (its summary); a run that printed nothing is an error. */
export async function lastLine(run: Promise<NetToolLine[]>): Promise<NetToolLine> {
  const lines = await run;
  const last = lines.at(-1);
  if (!last) throw new Error('net-tool printed no line: see its stderr in the exit error');
  return last;
}
