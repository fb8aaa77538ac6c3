// Pod-to-pod TCP across two node namespaces: through the mesh's WireGuard (WireguardAgent, strict
// mode attached), through a wireguard-go tunnel configured by hand with plain `wg` commands
// between the same namespaces, and unencrypted (routes over the underlay). Conditions differ
// only by the route the node namespaces use for the other pod CIDR, so they interleave within
// one run; medians of the repeats, plus CPU seconds per GB (iperf3 client+server from its JSON
// report, wireguard-go of both nodes from /proc/<pid>/stat).
// Run as root: node --import tsx bench/encryption/tunnel.ts [seconds=3] [repeats=5]
// Experiment switches: BENCH_NO_STRICT=1 (mesh without the strict-mode filter),
// BENCH_MANUAL_UNSHARE=1 (the hand-made wireguard-go also in a private mount namespace).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from '../../agent/routing/command.ts';
import { ipBatch } from '../../integration/lab/netns.ts';
import { WireguardAgent } from '../../agent/wireguard/agent.ts';
import { StrictFilter } from '../../agent/wireguard/strict.ts';
import { generateKey } from '../../agent/wireguard/keys.ts';
import {
  NsProcess,
  buildTopology,
  leftovers,
  teardownTopology,
  uniquePrefix,
  wgNodeOf,
  type TestNode,
  type Topology,
} from '../../agent/wireguard/test/topology.ts';

const seconds = Math.min(Number(process.argv[2] ?? 3), 30);
const repeats = Math.min(Number(process.argv[3] ?? 5), 15);
const MANUAL_PORT = 51890;
type Condition = 'mesh' | 'manual' | 'plain';

interface Sample {
  gbps: number;
  cpuS: number;
  bytes: number;
}

/** utime + stime of a process in seconds (clock ticks of 100 Hz). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function iperf(t: Topology, wgPids: number[]): Promise<Sample> {
  const [a, b] = t.nodes;
  const srv = new NsProcess(b.podNetns, ['iperf3', '-s', '-1', '-p', '5201']);
  await sleep(300);
  const cpu0 = wgPids.reduce((s, p) => s + cpuOf(p), 0);
  const cli = new NsProcess(a.podNetns, [
    'timeout',
    String(seconds + 20),
    'iperf3',
    '-c',
    b.podIP,
    '-p',
    '5201',
    '-t',
    String(seconds),
    '-J',
  ]);
  const code = await cli.exited;
  const cpu1 = wgPids.reduce((s, p) => s + cpuOf(p), 0);
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
  return { gbps: recv.bits_per_second / 1e9, cpuS: iperfCpu + (cpu1 - cpu0), bytes: recv.bytes };
}

/** The hand-made tunnel: wireguard-go in each node namespace, configured with `wg` only.
 * `pids` collects the daemons as they start, so a failure half-way still ends them. */
async function manualTunnel(
  t: Topology,
  pids: number[],
): Promise<{ ifnames: string[]; pids: number[] }> {
  // unique names: /run/wireguard (the UAPI sockets) is shared by all namespaces
  const ifnames = t.nodes.map((n) => `${t.prefix.slice(-6)}m${n.index}`);
  const keys = t.nodes.map(() => generateKey());
  for (const [i, n] of t.nodes.entries()) {
    const ifname = ifnames[i] ?? '';
    const wrap =
      process.env.BENCH_MANUAL_UNSHARE === '1'
        ? ['unshare', '-m', '--propagation', 'private', '--']
        : [];
    const p = new NsProcess(n.netns, [...wrap, 'wireguard-go', '-f', ifname]);
    if (p.child.pid) pids.push(p.child.pid);
    for (let i = 0; i < 50 && !(await exists(`/run/wireguard/${ifname}.sock`, n)); i++)
      await sleep(50);
  }
  for (const [i, n] of t.nodes.entries()) {
    const ifname = ifnames[i] ?? '';
    const other = t.nodes[1 - i] as TestNode;
    const key = `${t.dir}/manual-${i}.key`;
    await mustRun(['sh', '-c', `umask 077; echo ${keys[i]!.privateKey} > ${key}`]);
    const wg = [
      'nsenter',
      `--net=${n.netns}`,
      'wg',
      'set',
      ifname,
      'listen-port',
      String(MANUAL_PORT),
      'private-key',
      key,
      'peer',
      keys[1 - i]!.publicKey,
      'endpoint',
      `${other.ip}:${MANUAL_PORT}`,
      'allowed-ips',
      other.podCIDR,
    ];
    await mustRun(wg);
    await ipBatch(n.ns, [`link set ${ifname} mtu 1420 up`]);
  }
  return { ifnames, pids };
}

async function exists(path: string, _n: TestNode): Promise<boolean> {
  return (await mustRun(['sh', '-c', `test -S ${path} && echo y || echo n`])).trim() === 'y';
}

async function route(t: Topology, c: Condition, manualIfs: string[]): Promise<void> {
  for (const [i, n] of t.nodes.entries()) {
    const other = t.nodes[1 - i] as TestNode;
    const how =
      c === 'plain' ? `via ${other.ip}` : `dev ${c === 'mesh' ? 'isthmus_wg0' : manualIfs[i]}`;
    await ipBatch(n.ns, [`route replace ${other.podCIDR} ${how}`]);
  }
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const prefix = uniquePrefix('h12bn');
  const t = await buildTopology(prefix);
  const agents: WireguardAgent[] = [];
  const manual: number[] = [];
  try {
    for (const n of t.nodes)
      agents.push(
        await WireguardAgent.start({
          nodeName: n.name,
          netns: n.netns,
          stateDir: n.stateDir,
          resyncMs: 0,
          mode: 'wireguard-go',
        }),
      );
    const table = t.nodes.map((n, i) => wgNodeOf(n, agents[i]!.publicKey));
    for (const a of agents) await a.setPeers(table);
    const m = await manualTunnel(t, manual);
    const meshPids = agents.map((a) => a.activeDevice.pid ?? 0);
    const samples: Record<Condition, Sample[]> = { mesh: [], manual: [], plain: [] };
    const order: Condition[] = ['mesh', 'manual', 'plain'];
    for (let r = 0; r < repeats; r++) {
      for (let k = 0; k < order.length; k++) {
        const c = order[(r + k) % order.length] as Condition;
        await route(t, c, m.ifnames);
        // mesh = as deployed: strict mode on both underlays (plain would be dropped by it)
        const strict =
          c === 'mesh' && process.env.BENCH_NO_STRICT !== '1' ? await attachStrict(t) : [];
        try {
          const s = await iperf(t, c === 'mesh' ? meshPids : c === 'manual' ? m.pids : []);
          samples[c].push(s);
          console.log(
            `repeat ${r + 1} ${c.padEnd(6)} ${s.gbps.toFixed(3)} Gbit/s  ${(s.cpuS / (s.bytes / 1e9)).toFixed(2)} CPU s/GB`,
          );
        } finally {
          for (const f of strict) f.detach();
        }
      }
    }
    const g = (c: Condition) => median(samples[c].map((s) => s.gbps));
    const cpu = (c: Condition) => median(samples[c].map((s) => s.cpuS / (s.bytes / 1e9)));
    console.log(
      `\nmedians of ${repeats} interleaved repeats, ${seconds} s each (iperf3, one TCP stream, pod MTU 1420):`,
    );
    for (const c of order)
      console.log(
        `  ${c.padEnd(6)} ${(g(c) * 1000).toFixed(0)} Mbit/s  ${cpu(c).toFixed(2)} CPU s/GB`,
      );
    const paired = median(samples.mesh.map((s, i) => s.gbps / (samples.manual[i]?.gbps ?? NaN)));
    console.log(
      `  mesh/manual ${(g('mesh') / g('manual')).toFixed(3)} (target >= 0.9); median of paired ratios ${paired.toFixed(3)}`,
    );
    console.log(`  mesh/plain  ${(g('mesh') / g('plain')).toFixed(3)}`);
  } finally {
    for (const a of agents) await a.destroy().catch(() => {});
    for (const pid of manual) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {}
    }
    await sleep(300);
    await teardownTopology(t);
    const left = await leftovers(prefix);
    if (left.length) console.log(`left behind: ${left.join(', ')}`);
  }
}

async function attachStrict(t: Topology): Promise<StrictFilter[]> {
  const out: StrictFilter[] = [];
  for (const [i, n] of t.nodes.entries()) {
    const f = await StrictFilter.attach({
      pinRoot: t.pinRoots[i] ?? '',
      netns: n.netns,
      underlayIf: 'eth0',
    });
    f.setRanges(
      [n.podCIDR],
      t.nodes.map((x) => x.podCIDR),
    );
    out.push(f);
  }
  return out;
}

await main();
