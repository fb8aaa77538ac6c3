// What the encryption benchmarks measure per repeat: one iperf3 TCP stream pod to pod (first
// second omitted: slow start), CPU seconds of given processes over the run (/proc/<pid>/stat),
// bytes the sending node's device carried, and the order of interleaved conditions.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from '../../agent/routing/command.ts';
import { NsProcess } from '../../agent/wireguard/test/topology.ts';

export interface Sample {
  mbit: number;
  /** CPU seconds of the tunnel daemons per GB their sending device carried */
  daemonCpuPerGB: number;
  /** iperf3 client + server CPU seconds per GB received (its own report) */
  iperfCpuPerGB: number;
  /** CPU seconds of the watched extra processes (agents) over the run, and the run's length */
  extraCpuS: number;
  wallS: number;
  /** bytes the sending node's device carried during the run */
  bytes: number;
}

export interface IperfRun {
  clientNetns: string;
  serverNetns: string;
  serverIP: string;
  seconds: number;
  /** namespace names whose TCP metrics are flushed first */
  flush: string[];
  /** node namespace name and device whose tx bytes are the tunnel's payload */
  countOn: { ns: string; dev: string };
  daemons: number[];
  extra?: number[];
}

/** utime + stime of a process in seconds (clock ticks of 100 Hz); 0 when it is gone. */
export function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

export const cpuOfAll = (pids: number[]): number => pids.reduce((s, p) => s + cpuOf(p), 0);

export async function txBytes(ns: string, dev: string): Promise<number> {
  const out = await mustRun(['ip', '-n', ns, '-j', '-s', 'link', 'show', 'dev', dev]);
  const rows = JSON.parse(out) as Array<{ stats64: { tx: { bytes: number } } }>;
  return rows[0]?.stats64.tx.bytes ?? 0;
}

export async function iperf(o: IperfRun): Promise<Sample> {
  // the kernel caches per-destination TCP metrics (RTT): without this flush a run
  // would start from what the previous condition, over another path, left behind
  for (const ns of o.flush) await mustRun(['ip', '-n', ns, 'tcp_metrics', 'flush', 'all']);
  const srv = new NsProcess(o.serverNetns, ['iperf3', '-s', '-1', '-p', '5201']);
  await sleep(300);
  const t0 = Date.now();
  const [cpu0, extra0, tx0] = [
    cpuOfAll(o.daemons),
    cpuOfAll(o.extra ?? []),
    await txBytes(o.countOn.ns, o.countOn.dev),
  ];
  const cli = new NsProcess(o.clientNetns, [
    'timeout',
    String(o.seconds + 25),
    'iperf3',
    '-c',
    o.serverIP,
    '-p',
    '5201',
    '-t',
    String(o.seconds),
    '-O',
    '1',
    '-J',
  ]);
  const code = await cli.exited;
  const [cpu1, extra1, tx1] = [
    cpuOfAll(o.daemons),
    cpuOfAll(o.extra ?? []),
    await txBytes(o.countOn.ns, o.countOn.dev),
  ];
  const wallS = (Date.now() - t0) / 1000;
  if (code !== 0) {
    await srv.stop('SIGKILL');
    throw new Error(`iperf3 failed (${code}): ${cli.output.slice(0, 500)}`);
  }
  await Promise.race([srv.exited, sleep(3000).then(() => srv.stop('SIGKILL'))]);
  const r = JSON.parse(cli.output) as {
    end: {
      sum_received: { bits_per_second: number; bytes: number; seconds: number };
      cpu_utilization_percent: { host_total: number; remote_total: number };
    };
  };
  const { sum_received: recv, cpu_utilization_percent: cpu } = r.end;
  const iperfCpu = ((cpu.host_total + cpu.remote_total) / 100) * recv.seconds;
  return {
    mbit: recv.bits_per_second / 1e6,
    daemonCpuPerGB: o.daemons.length ? (cpu1 - cpu0) / ((tx1 - tx0) / 1e9) : 0,
    iperfCpuPerGB: iperfCpu / (recv.bytes / 1e9),
    extraCpuS: extra1 - extra0,
    wallS,
    bytes: tx1 - tx0,
  };
}

/** Repeat r's order: rotated by r, reversed on odd repeats, so no condition always follows the
 * same one (a cyclic rotation alone keeps every condition's predecessor fixed). */
export function orderOf(names: string[], r: number): string[] {
  const rotated = names.map((_, k) => names[(r + k) % names.length]!);
  return r % 2 ? rotated.reverse() : rotated;
}

export const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

export function sampleLine(name: string, s: Sample): string {
  return (
    `${name.padEnd(16)} ${s.mbit.toFixed(0).padStart(6)} Mbit/s  daemons ` +
    `${s.daemonCpuPerGB.toFixed(1)} CPU s/GB  iperf3 ${s.iperfCpuPerGB.toFixed(2)} CPU s/GB`
  );
}

/** Medians per condition with the per-repeat throughputs, then every condition against `base`
 * (ratio of medians, and the median of per-repeat ratios: each pair ran in the same repeat). */
export function report(base: string, names: string[], samples: Record<string, Sample[]>): void {
  for (const c of names) {
    const s = samples[c] ?? [];
    const m = (f: (x: Sample) => number) => median(s.map(f));
    console.log(
      `  ${c.padEnd(16)} ${m((x) => x.mbit)
        .toFixed(0)
        .padStart(6)} Mbit/s  daemons ${m((x) => x.daemonCpuPerGB).toFixed(1)} CPU s/GB  ` +
        `iperf3 ${m((x) => x.iperfCpuPerGB).toFixed(2)} CPU s/GB   ` +
        `[${s.map((x) => x.mbit.toFixed(0)).join(' ')}]`,
    );
  }
  const b = (samples[base] ?? []).map((x) => x.mbit);
  for (const c of names.filter((n) => n !== base)) {
    const a = (samples[c] ?? []).map((x) => x.mbit);
    const paired = median(a.map((x, i) => x / (b[i] ?? NaN)));
    console.log(
      `  ${c}/${base} ${(median(a) / median(b)).toFixed(3)} (ratio of medians); ` +
        `median of per-repeat ratios ${paired.toFixed(3)}`,
    );
  }
}
