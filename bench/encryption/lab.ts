// Lab-level encryption benchmark: pod-to-pod TCP throughput across two nodes of a lab running
// WireGuard (encryption: wireguard) vs a lab without it (encryption: none), interleaved in one
// run; CPU seconds per GB of the nodes' wireguard-go daemons; the longest delivery gap of a
// live connection (20 ms messages) during a key rotation.
//   node --import tsx bench/encryption/lab.ts [MB per transfer] [repeats] [rotations]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callWireguard } from '../../cli/wireguard.ts';
import { planLab, type LabPlan } from '../../integration/lab/config.ts';
import { Lab } from '../../integration/lab/lab.ts';
import type { LabPod } from '../../integration/lab/record.ts';
import { uniqueLabName } from '../../integration/lab/testing.ts';
import { inPod, startSink, waitForPeers } from '../../integration/e2e-encryption/helpers.ts';

const [mb = 50, repeats = 5, rotations = 3] = process.argv.slice(2).map(Number);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface Side {
  plan: LabPlan;
  lab: Lab;
  a: LabPod;
  b: LabPod;
}

async function side(encryption: 'wireguard' | 'none', cidr: string): Promise<Side> {
  const plan = planLab({
    name: uniqueLabName(encryption === 'none' ? 'bplain' : 'bwg'),
    encryption,
    clusters: [{ name: 'c1', id: 1, podCIDR: cidr, nodes: 2 }],
  });
  const lab = await Lab.up(plan, { routeIntervalMs: 1000 });
  const ports = [{ port: 80, protocol: 'TCP' as const, name: 'http' }];
  const pods = await lab.addPods(
    [0, 1].map((i) => ({ cluster: 'c1', namespace: 'default', name: `p${i}`, ports })),
  );
  if (encryption === 'wireguard') await waitForPeers(plan.clusters[0]!.nodes);
  const [a, b] = plan.clusters[0]!.nodes.map((n) => pods.find((p) => p.node === n.name)!);
  return { plan, lab, a: a!, b: b! };
}

/** utime+stime seconds of the lab's wireguard-go daemons. */
function wgCpu(plan: LabPlan): number {
  let ticks = 0;
  for (const n of plan.clusters[0]!.nodes)
    for (const f of ['isthmus_wg0', 'isthmus_wg1']) {
      try {
        const rec = JSON.parse(readFileSync(join(n.stateDir, 'wireguard', `${f}.json`), 'utf8'));
        const stat = readFileSync(`/proc/${rec.pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        /* device absent */
      }
    }
  return ticks / 100;
}

async function transfer(s: Side): Promise<{ mbit: number; cpu: number }> {
  const cpu0 = wgCpu(s.plan);
  const r = await inPod<{ sent: number; ms: number; sha256: string; got: { sha256: string } }>(
    s.a,
    ['send', s.b.ip, '9100', String(mb * 1024 * 1024)],
  );
  if (r.got.sha256 !== r.sha256) throw new Error('transfer corrupted');
  return { mbit: (r.sent * 8) / r.ms / 1000, cpu: wgCpu(s.plan) - cpu0 };
}

const sides: Side[] = [];
const sinks: Array<{ stop(): Promise<void> }> = [];
try {
  sides.push(await side('wireguard', '10.71.0.0/16'), await side('none', '10.72.0.0/16'));
  const [wg, plain] = sides as [Side, Side];
  for (const s of sides) sinks.push(await startSink(s.b, 9100, 1200, s.plan.runDir));
  const res = { wg: [] as number[], plain: [] as number[], cpuPerGB: [] as number[] };
  for (let i = 0; i < repeats; i++) {
    const w = await transfer(wg);
    const p = await transfer(plain);
    res.wg.push(w.mbit);
    res.plain.push(p.mbit);
    res.cpuPerGB.push(w.cpu / (mb / 1024));
  }
  const gaps: number[] = [];
  for (let i = 0; i < rotations; i++) {
    const stream = inPod<{ sent: number; received: number; maxGapMs: number; error: unknown }>(
      wg.a,
      ['stream', wg.b.ip, '80', '16000', '20'],
    );
    await new Promise((r) => setTimeout(r, 1500));
    const rot = await callWireguard(
      wg.plan.clusters[0]!.nodes[1]!.stateDir,
      { op: 'rotate' },
      90_000,
    );
    const s = await stream;
    if (!rot.ok || s.error || s.received !== s.sent)
      throw new Error(`rotation ${i} lost data: ${JSON.stringify({ rot, s })}`);
    gaps.push(s.maxGapMs);
  }
  console.log(
    JSON.stringify({
      mbPerTransfer: mb,
      repeats,
      wireguardMbit: Math.round(median(res.wg)),
      plainMbit: Math.round(median(res.plain)),
      ratio: +(median(res.wg) / median(res.plain)).toFixed(3),
      wireguardGoCpuSecondsPerGB: +median(res.cpuPerGB).toFixed(1),
      rotationMaxGapMs: gaps,
      all: res,
    }),
  );
} finally {
  for (const k of sinks) await k.stop();
  for (const s of sides) await s.lab.down();
}
