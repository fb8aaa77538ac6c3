// Measuring helpers of bench/mesh/agent-scale.ts: the agent process's memory (RSS from /proc,
// V8 heap from its status) and the times its log says it connected to a remote.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import type { NodePlan } from '../../integration/lab/config.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const rssMbOf = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

export interface MemorySample {
  rssMb: number;
  heapUsedMb: number;
}

/** Medians of `n` samples 1 s apart; checks the status comes from the process measured. */
export async function sampleMemory(
  pid: number,
  status: () => Promise<AgentStatus>,
  n: number,
): Promise<MemorySample> {
  const rss: number[] = [];
  const heap: number[] = [];
  for (let i = 0; i < n; i++) {
    if (i) await sleep(1000);
    const s = await status();
    if (s.process && s.process.pid !== pid)
      throw new Error(`agent status comes from PID ${s.process.pid}, not ${pid}`);
    rss.push(rssMbOf(pid));
    heap.push((s.process?.heapUsedBytes ?? NaN) / 2 ** 20);
  }
  return { rssMb: median(rss), heapUsedMb: median(heap) };
}

export const heapMb = (m: MemorySample): string => m.heapUsedMb.toFixed(0);

/** Wall-clock times (ms) of the agent's "connected to remote cluster" log lines. */
export function agentConnectedTimes(node: NodePlan): number[] {
  const out: number[] = [];
  for (const line of readFileSync(join(node.dir, 'agent.log'), 'utf8').split('\n')) {
    if (!line.includes('connected to remote cluster')) continue;
    try {
      const t = (JSON.parse(line) as { time?: unknown }).time;
      if (typeof t === 'number') out.push(t);
    } catch {
      // a line that is not pino JSON (e.g. a stack trace) carries no time
    }
  }
  return out;
}

/** Run inside the agent's network namespace: a full GC through the agent's inspector (port 9229). */
const COLLECT_GARBAGE = `
const deadline = Date.now() + 20000;
let list;
for (;;) {
  try { list = await (await fetch('http://127.0.0.1:9229/json/list')).json(); break; }
  catch (e) { if (Date.now() > deadline) throw e; await new Promise((r) => setTimeout(r, 100)); }
}
const ws = new WebSocket(list[0].webSocketDebuggerUrl);
await new Promise((res, rej) => { ws.onopen = res; ws.onerror = rej; });
const replies = new Map();
ws.onmessage = (m) => { const r = JSON.parse(m.data); replies.get(r.id)?.(r); };
const call = (id, method) => new Promise((res) => { replies.set(id, res); ws.send(JSON.stringify({ id, method })); });
await call(1, 'HeapProfiler.collectGarbage');
const usage = await call(2, 'Runtime.getHeapUsage');
console.log(JSON.stringify(usage.result));
ws.close();
`;

/**
 * The agent's V8 heap right after a full GC, in MB: SIGUSR1 opens its inspector on 127.0.0.1:9229
 * of its node's namespace (a lab namespace), a client run there asks for the GC and then the
 * heap's used size. Unlike a heap snapshot, this leaves the RSS as it was.
 */
export async function gcHeapMb(pid: number, netns: string, timeoutMs = 60_000): Promise<number> {
  process.kill(pid, 'SIGUSR1');
  const argv = [`--net=${netns}`, '--', process.execPath, '--experimental-websocket'];
  const r = spawnSync('nsenter', [...argv, '--input-type=module', '-e', COLLECT_GARBAGE], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (r.status !== 0) throw new Error(`GC through the agent's inspector failed: ${r.stderr}`);
  // read in the same inspector session, so nothing the agent allocates afterwards counts
  const usage = JSON.parse(r.stdout) as { usedSize: number };
  return usage.usedSize / 2 ** 20;
}
