// Per-packet cost of the mesh's eBPF programs, from the kernel's own accounting: with
// kernel.bpf_stats_enabled=1 every program counts its runs and nanoseconds (`bpftool prog`),
// which is independent of how busy the machine is. The setting is machine-wide: it is turned
// on only for the benchmark and restored (the timing adds a few ns per program run).
import { mustRun } from '../../agent/routing/command.ts';

interface Prog {
  /** "<netns>:<dev>:<hook>:<name>" */
  where: string;
  name: string;
  runs: number;
  ns: number;
}

export interface BpfStats {
  read(): Promise<Map<number, Prog>>;
  /** text: "from_pod 12.3k runs 180 ns/run; ... total 4.5 ms"; totalNs: all programs */
  delta(a: Map<number, Prog>, b: Map<number, Prog>): { text: string; totalNs: number };
  close(): Promise<void>;
}

const SYSCTL = 'kernel.bpf_stats_enabled';

export async function bpfStats(netns: string[]): Promise<BpfStats> {
  const previous = (await mustRun(['sysctl', '-n', SYSCTL])).trim();
  await mustRun(['sysctl', '-qw', `${SYSCTL}=1`]);
  return {
    read: () => readProgs(netns),
    delta,
    close: async () => void (await mustRun(['sysctl', '-qw', `${SYSCTL}=${previous}`])),
  };
}

/** Every tc program attached in the given namespaces, with its counters. */
async function readProgs(netns: string[]): Promise<Map<number, Prog>> {
  const out = new Map<number, Prog>();
  for (const ns of netns) {
    const net = JSON.parse(
      await mustRun(['nsenter', `--net=/run/netns/${ns}`, 'bpftool', '-j', 'net', 'show']),
    ) as Array<{ tc?: Array<{ devname: string; kind: string; name: string; id: number }> }>;
    for (const tc of net.flatMap((x) => x.tc ?? [])) {
      const p = JSON.parse(
        await mustRun(['bpftool', '-j', 'prog', 'show', 'id', String(tc.id)]),
      ) as { name: string; run_time_ns?: number; run_cnt?: number };
      out.set(tc.id, {
        where: `${ns}:${tc.devname}:${tc.kind}`,
        name: p.name,
        runs: p.run_cnt ?? 0,
        ns: p.run_time_ns ?? 0,
      });
    }
  }
  return out;
}

/** Runs and time per program name between two reads (programs present in both). */
function delta(a: Map<number, Prog>, b: Map<number, Prog>): { text: string; totalNs: number } {
  const byName = new Map<string, { runs: number; ns: number }>();
  for (const [id, p] of b) {
    const q = a.get(id);
    if (!q) continue;
    const sum = byName.get(p.name) ?? { runs: 0, ns: 0 };
    sum.runs += p.runs - q.runs;
    sum.ns += p.ns - q.ns;
    byName.set(p.name, sum);
  }
  let total = 0;
  const parts = [...byName].map(([name, s]) => {
    total += s.ns;
    const per = s.runs ? s.ns / s.runs : 0;
    return `${name} ${(s.runs / 1000).toFixed(1)}k runs ${per.toFixed(0)} ns/run`;
  });
  return { text: `${parts.join('; ')}; total ${(total / 1e6).toFixed(1)} ms`, totalNs: total };
}
