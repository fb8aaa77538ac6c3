// The issue's comparison at the lab level: pod-to-pod TCP across two nodes of a lab running the
// mesh as deployed (agents with the kernel datapath on every pod veth, encryption: wireguard,
// strict mode, MSS clamp, pod veths at MTU 1500) vs a wireguard-go tunnel made by hand between
// the same two node namespaces (hand-tunnel.ts, own session like the agent's daemon, with the
// same MSS clamp since the pods keep MTU 1500). Both paths are selected by one policy-routing
// rule per node (`to <other pod>/32 lookup 2525`) whose table points at isthmus_wg0 or at the
// hand-made device: the agents never touch that table, and both paths pay the same rule.
// The pod programs and the strict filter run on both paths (they sit on the pod veths and the
// underlay); their own per-packet cost is read from the kernel's BPF run-time statistics when
// BENCH_BPF_STATS=1 (turns kernel.bpf_stats_enabled on for the run, restores it after).
// Also printed: the agents' CPU while traffic flows.
// Run as root: node --import tsx bench/encryption/lab-vs-hand.ts [seconds=3] [repeats=9]
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mustRun } from '../../agent/routing/command.ts';
import { mssClampRule } from '../../agent/wireguard/routes.ts';
import { planLab, type NodePlan } from '../../integration/lab/config.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import type { LabPod } from '../../integration/lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../../integration/lab/testing.ts';
import { ipBatch } from '../../integration/lab/netns.ts';
import { waitForPeers } from '../../integration/e2e-encryption/helpers.ts';
import { startHandTunnel, stopDaemons, type HandSite } from './hand-tunnel.ts';
import { iperf, median, orderOf, report, sampleLine, type Sample } from './measure.ts';
import { bpfStats, type BpfStats } from './bpf-stats.ts';

const seconds = Math.min(Number(process.argv[2] ?? 3), 30);
const repeats = Math.min(Number(process.argv[3] ?? 9), 25);
const TABLE = 2525;
const HAND_PORT = 51895;

type Path = 'mesh' | 'hand';

interface Bench {
  lab: Lab;
  nodes: [NodePlan, NodePlan];
  pods: [LabPod, LabPod];
  devs: Record<Path, string[]>;
  daemons: Record<Path, number[]>;
  agents: number[];
}

/** Points each node's rule table at the condition's device for the other node's pod. */
async function steer(b: Bench, path: Path): Promise<void> {
  for (const [i, n] of b.nodes.entries()) {
    const other = b.pods[1 - i]!;
    await ipBatch(n.netns, [`route replace ${other.ip}/32 dev ${b.devs[path][i]} table ${TABLE}`]);
  }
}

async function installRules(b: Bench): Promise<void> {
  for (const [i, n] of b.nodes.entries()) {
    const other = b.pods[1 - i]!;
    await ipBatch(n.netns, [`rule add to ${other.ip}/32 lookup ${TABLE} pref 95`]);
    // the pods keep MTU 1500: the hand-made tunnel needs the clamp the agent sets for its own
    await mustRun([
      'nsenter',
      `--net=/run/netns/${n.netns}`,
      'iptables',
      ...mssClampRule(b.devs.hand[i]!),
    ]);
  }
}

async function meshDaemonPids(nodes: NodePlan[]): Promise<number[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const rec = JSON.parse(
        await readFile(join(n.stateDir, 'wireguard', 'isthmus_wg0.json'), 'utf8'),
      ) as { pid: number };
      return rec.pid;
    }),
  );
}

/** mesh-mtu1420: the pods' interfaces at the tunnel MTU for the run (the clamp has nothing to do) */
const CONDITIONS: Record<string, { path: Path; podMtu: number }> = {
  mesh: { path: 'mesh', podMtu: 1500 },
  hand: { path: 'hand', podMtu: 1500 },
  'mesh-mtu1420': { path: 'mesh', podMtu: 1420 },
};

async function setPodMtu(b: Bench, mtu: number): Promise<void> {
  for (const pod of b.pods) await ipBatch(pod.netns, [`link set eth0 mtu ${mtu}`]);
}

async function run(b: Bench, name: string, stats: BpfStats | undefined) {
  const { path, podMtu } = CONDITIONS[name]!;
  await steer(b, path);
  if (podMtu !== 1500) await setPodMtu(b, podMtu);
  try {
    return await measure(b, path, stats);
  } finally {
    if (podMtu !== 1500) await setPodMtu(b, 1500);
  }
}

async function measure(b: Bench, path: Path, stats: BpfStats | undefined) {
  const [client, server] = b.pods;
  const before = await stats?.read();
  const s = await iperf({
    clientNetns: client.netnsPath,
    serverNetns: server.netnsPath,
    serverIP: server.ip,
    seconds,
    flush: [client.netns, server.netns],
    countOn: { ns: b.nodes[0].netns, dev: b.devs[path][0]! },
    daemons: b.daemons[path],
    extra: b.agents,
  });
  const after = await stats?.read();
  return { s, bpf: before && after ? stats!.delta(before, after) : undefined };
}

async function main(): Promise<void> {
  await ensureBuilt();
  const name = uniqueLabName('h25lh');
  const plan = planLab({
    name,
    encryption: 'wireguard',
    clusters: [{ name: 'c1', id: 1, podCIDR: '10.74.0.0/16', nodes: 2 }],
  });
  const nodes = plan.clusters[0]!.nodes as [NodePlan, NodePlan];
  const handPids: number[] = [];
  let lab: Lab | undefined;
  let stats: BpfStats | undefined;
  try {
    lab = await Lab.up(plan, { datapath: 'bpf' });
    const ports = [{ port: 80, protocol: 'TCP' as const }];
    const pods = (await lab.addPods([
      { cluster: 'c1', namespace: 'bench', name: 'client', node: nodes[0].name, ports },
      { cluster: 'c1', namespace: 'bench', name: 'server', node: nodes[1].name, ports },
    ])) as [LabPod, LabPod];
    await waitForPeers(nodes);
    const site: HandSite = {
      prefix: name,
      dir: join(plan.runDir, 'hand'),
      nodes: nodes.map((n, i) => ({
        index: i + 1,
        ns: n.netns,
        netns: `/run/netns/${n.netns}`,
        ip: n.ip,
        podCIDR: n.podCIDR,
      })),
    };
    await mustRun(['mkdir', '-p', site.dir]);
    const hand = await startHandTunnel(
      site,
      { tag: 'h', port: HAND_PORT, detached: true, mtu: 1420 },
      handPids,
    );
    const b: Bench = {
      lab,
      nodes,
      pods,
      devs: { mesh: ['isthmus_wg0', 'isthmus_wg0'], hand: hand.ifnames },
      daemons: { mesh: await meshDaemonPids(nodes), hand: hand.pids },
      agents: nodes.map((n) => lab!.agentPid(n.name) ?? 0),
    };
    await installRules(b);
    if (process.env.BENCH_BPF_STATS === '1') stats = await bpfStats(nodes.map((n) => n.netns));
    const names = (process.env.BENCH_CONDITIONS ?? 'mesh,hand,mesh-mtu1420').split(',');
    for (const n of names) if (!CONDITIONS[n]) throw new Error(`unknown condition ${n}`);
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    const bpfPerGB: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const agentPct: number[] = [];
    for (let r = 0; r < repeats; r++)
      for (const c of orderOf(names, r)) {
        const { s, bpf } = await run(b, c, stats);
        samples[c]!.push(s);
        agentPct.push((100 * s.extraCpuS) / s.wallS);
        if (bpf) bpfPerGB[c]!.push(bpf.totalNs / 1e9 / (s.bytes / 1e9));
        console.log(`repeat ${r + 1} ${sampleLine(c, s)}${bpf ? `  bpf: ${bpf.text}` : ''}`);
      }
    console.log(
      `\nlab ${name}, medians of ${repeats} interleaved repeats, ${seconds} s each after 1 s omitted (iperf3, one TCP stream, pod MTU 1500 + MSS clamp):`,
    );
    report('hand', names, samples);
    console.log(
      `  agents (both nodes) during the runs: median ${median(agentPct).toFixed(1)} % of one core`,
    );
    if (stats)
      for (const c of names)
        console.log(
          `  BPF programs of both nodes (pod veths, strict filter), ${c}: median ${median(bpfPerGB[c]!).toFixed(2)} CPU s/GB`,
        );
    console.log(
      `\nper repeat: ${JSON.stringify(samples, (_, v) => (typeof v === 'number' ? +v.toFixed(2) : v))}`,
    );
  } finally {
    await stats?.close();
    await stopDaemons(handPids);
    await lab?.down();
    const left = await labLeftovers(name);
    if (left.length) console.log(`left behind: ${left.join(', ')}`);
  }
}

await main();
