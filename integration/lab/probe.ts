// Real-traffic probes between lab pods through the C prober (tools/probe.c): TCP or UDP, a marker
// echoed by the destination's echo server. A "dropped" answer is confirmed by retrying with a
// longer timeout, because a slow answer on two busy cores must not read as a drop.
import { spawn } from 'node:child_process';
import { toolPath } from './pods.ts';

export type ProbeProtocol = 'TCP' | 'UDP';
export type ProbeVerdict = 'allowed' | 'dropped' | 'refused' | 'error';

export interface ProbeRequest {
  /** source network namespace path */
  fromNetns: string;
  ip: string;
  port: number;
  protocol: ProbeProtocol;
}

export interface ProbeResult extends ProbeRequest {
  result: ProbeVerdict;
  /** latency of the last attempt, ms */
  ms: number;
  detail: string;
  /** how many attempts it took (drops are retried before they count) */
  attempts: number;
}

export interface ProbeOptions {
  /** first attempt's wait for an answer (default 500 ms: pods answer within milliseconds) */
  timeoutMs?: number;
  /** extra attempts for a drop, each with double the timeout (default 2: 0.5 + 1 + 2 s) */
  confirmRetries?: number;
  parallel?: number;
}

interface RawResult {
  id: string;
  result: ProbeVerdict;
  ms: number;
  detail: string;
}

/** Runs one batch through the prober; results keyed by request index. */
function runBatch(
  reqs: ProbeRequest[],
  timeoutMs: number,
  parallel: number,
): Promise<Map<number, RawResult>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      toolPath('probe'),
      ['--timeout-ms', String(timeoutMs), '--parallel', String(parallel)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`probe exited with ${code}: ${err.trim()}`));
      const results = new Map<number, RawResult>();
      for (const line of out.split('\n')) {
        if (!line) continue;
        const r = JSON.parse(line) as RawResult;
        results.set(Number(r.id), r);
      }
      resolve(results);
    });
    child.stdin.end(
      reqs
        .map((r, i) => `${i} ${r.fromNetns} ${r.ip} ${r.port} ${r.protocol.toLowerCase()}\n`)
        .join(''),
    );
  });
}

/** Probes every request; each drop is retried (`confirmRetries`, default 2) before it stands. */
export async function probe(reqs: ProbeRequest[], opts: ProbeOptions = {}): Promise<ProbeResult[]> {
  let timeoutMs = opts.timeoutMs ?? 500;
  const parallel = opts.parallel ?? 64;
  const results: ProbeResult[] = reqs.map((r) => ({
    ...r,
    result: 'error',
    ms: 0,
    detail: 'not run',
    attempts: 0,
  }));
  let todo = reqs.map((_, i) => i);
  for (let attempt = 0; attempt <= (opts.confirmRetries ?? 2) && todo.length; attempt++) {
    const raw = await runBatch(
      todo.map((i) => reqs[i]!),
      timeoutMs,
      parallel,
    );
    todo.forEach((index, k) => {
      const r = raw.get(k);
      results[index] = {
        ...reqs[index]!,
        result: r?.result ?? 'error',
        ms: r?.ms ?? 0,
        detail: r?.detail ?? 'no answer from prober',
        attempts: attempt + 1,
      };
    });
    todo = todo.filter((i) => results[i]!.result === 'dropped');
    timeoutMs *= 2;
  }
  return results;
}
