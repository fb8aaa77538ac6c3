// Pod-to-pod TCP across two node namespaces (pods at MTU 1420): through the mesh's WireGuard
// (WireguardAgent, strict-mode filter on both underlays), through a wireguard-go tunnel made by
// hand between the same namespaces (hand-tunnel.ts), and unencrypted (routes over the underlay).
// Conditions differ only by the route the nodes use for the other pod CIDR (and the switches
// below), so they interleave within one run, the order rotating every repeat. Each repeat is one
// iperf3 stream from pod 1 to pod 2, the first second omitted (slow start), then `seconds`.
// Printed per repeat and as medians: throughput, CPU seconds per GB of the tunnel daemons of
// both nodes (/proc/<pid>/stat over the whole iperf3 run, per byte the sending node's tunnel
// device carried) and of iperf3 itself (its own report).
// Run as root: node --import tsx bench/encryption/tunnel.ts [seconds=3] [repeats=9]
// BENCH_CONDITIONS=a,b,... picks conditions (default: mesh,hand-detached,hand,plain); see CONDITIONS.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from '../../agent/routing/command.ts';
import { ipBatch } from '../../integration/lab/netns.ts';
import { WireguardAgent } from '../../agent/wireguard/agent.ts';
import { PEER_KEEPALIVE_S } from '../../agent/wireguard/peers.ts';
import { StrictFilter } from '../../agent/wireguard/strict.ts';
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
import { startHandTunnel, stopDaemons, type HandTunnel } from './hand-tunnel.ts';

const seconds = Math.min(Number(process.argv[2] ?? 3), 30);
const repeats = Math.min(Number(process.argv[3] ?? 9), 25);
const POD_MTU = 1420;

type HandPath = 'hand' | 'hand-detached' | 'hand-asagent';
type Path = 'mesh' | HandPath | 'plain';
interface Condition {
  path: Path;
  /** strict-mode filter on both underlays during the repeat */
  strict: boolean;
  /** the peers' persistent keepalive (25 s) is on: the agent's default, off by hand */
  keepalive: boolean;
}

/** One switch off at a time from the mesh as deployed; references without the mesh. */
const CONDITIONS: Record<string, Condition> = {
  mesh: { path: 'mesh', strict: true, keepalive: true },
  'mesh-nostrict': { path: 'mesh', strict: false, keepalive: true },
  'mesh-nokeepalive': { path: 'mesh', strict: true, keepalive: false },
  // hand-made wireguard-go in its own session, like the agent's daemon
  'hand-detached': { path: 'hand-detached', strict: false, keepalive: false },
  // hand-made wireguard-go as a child of this script (the benchmark before 2026-11-26 15:30)
  hand: { path: 'hand', strict: false, keepalive: false },
  // hand-made, started exactly as device.ts starts the mesh's (own session, private mounts)
  'hand-asagent': { path: 'hand-asagent', strict: false, keepalive: false },
  // hand-made (detached) with the mesh's strict filter on the underlays
  'hand-strict': { path: 'hand-detached', strict: true, keepalive: false },
  // hand-made (detached) with the mesh's keepalive
  'hand-keepalive': { path: 'hand-detached', strict: false, keepalive: true },
  plain: { path: 'plain', strict: false, keepalive: false },
};

interface Sample {
  mbit: number;
  daemonCpuPerGB: number;
  iperfCpuPerGB: number;
}

/** A tunnel between the two nodes: its devices, daemons and peer keys (index as in t.nodes). */
type TunnelPath = HandTunnel;
type Paths = Record<'mesh' | HandPath, TunnelPath>;

/** utime + stime of a process in seconds (clock ticks of 100 Hz). */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

const cpuOfAll = (pids: number[]): number => pids.reduce((s, p) => s + cpuOf(p), 0);

async function txBytes(n: TestNode, dev: string): Promise<number> {
  const out = await mustRun(['ip', '-n', n.ns, '-j', '-s', 'link', 'show', 'dev', dev]);
  const rows = JSON.parse(out) as Array<{ stats64: { tx: { bytes: number } } }>;
  return rows[0]?.stats64.tx.bytes ?? 0;
}

async function iperf(t: Topology, dev: string, pids: number[]): Promise<Sample> {
  const [a, b] = t.nodes;
  // the kernel caches per-destination TCP metrics (ssthresh, RTT): without this flush a run
  // would start from what the previous condition, over another path, left behind
  for (const n of t.nodes) await mustRun(['ip', '-n', n.podNs, 'tcp_metrics', 'flush', 'all']);
  const srv = new NsProcess(b.podNetns, ['iperf3', '-s', '-1', '-p', '5201']);
  await sleep(300);
  const [cpu0, tx0] = [cpuOfAll(pids), await txBytes(a, dev)];
  const cli = new NsProcess(a.podNetns, [
    'timeout',
    String(seconds + 25),
    'iperf3',
    '-c',
    b.podIP,
    '-p',
    '5201',
    '-t',
    String(seconds),
    '-O',
    '1',
    '-J',
  ]);
  const code = await cli.exited;
  const [cpu1, tx1] = [cpuOfAll(pids), await txBytes(a, dev)];
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
    daemonCpuPerGB: pids.length ? (cpu1 - cpu0) / ((tx1 - tx0) / 1e9) : 0,
    iperfCpuPerGB: iperfCpu / (recv.bytes / 1e9),
  };
}

/** Points both nodes' route for the other pod CIDR at the condition's path. */
async function route(t: Topology, path: Path, p: Paths): Promise<string> {
  for (const [i, n] of t.nodes.entries()) {
    const other = t.nodes[1 - i] as TestNode;
    const how = path === 'plain' ? `via ${other.ip}` : `dev ${devOf(path, p, i)}`;
    await ipBatch(n.ns, [`route replace ${other.podCIDR} ${how}`]);
  }
  return devOf(path, p, 0);
}

function devOf(path: Path, p: Paths, i: number): string {
  if (path === 'plain') return 'eth0';
  return p[path].ifnames[i] ?? '';
}

/** Persistent keepalive of the path's peers on both nodes, set with `wg set` inside the
 * daemon's mount namespace (where its UAPI socket is). */
async function setKeepalive(t: Topology, path: TunnelPath, on: boolean): Promise<void> {
  for (const [i, n] of t.nodes.entries()) {
    await mustRun([
      'nsenter',
      `--net=${n.netns}`,
      `--mount=/proc/${path.pids[i]}/ns/mnt`,
      'wg',
      'set',
      path.ifnames[i]!,
      'peer',
      path.peerKeys[i]!,
      'persistent-keepalive',
      String(on ? PEER_KEEPALIVE_S : 0),
    ]);
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

async function runCondition(
  t: Topology,
  c: Condition,
  p: Paths,
  agents: WireguardAgent[],
): Promise<Sample> {
  const dev = await route(t, c.path, p);
  const strict = c.strict ? await attachStrict(t) : [];
  const tunnel = c.path === 'plain' ? undefined : p[c.path];
  const toggle = tunnel && c.keepalive !== (c.path === 'mesh');
  if (toggle) await setKeepalive(t, tunnel, c.keepalive);
  try {
    return await iperf(t, dev, tunnel?.pids ?? []);
  } finally {
    for (const f of strict) f.detach();
    if (toggle) await setKeepalive(t, tunnel, !c.keepalive);
  }
}

/** Repeat r's order: rotated by r, reversed on odd repeats, so no condition always follows the
 * same one (a cyclic rotation alone keeps every condition's predecessor fixed). */
function orderOf(names: string[], r: number): string[] {
  const rotated = names.map((_, k) => names[(r + k) % names.length]!);
  return r % 2 ? rotated.reverse() : rotated;
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function report(names: string[], samples: Record<string, Sample[]>): void {
  const f = (xs: number[], d = 0) => xs.map((x) => x.toFixed(d)).join(' ');
  console.log(
    `\nmedians of ${repeats} interleaved repeats, ${seconds} s each after 1 s omitted (iperf3, one TCP stream, pod MTU ${POD_MTU}):`,
  );
  for (const c of names) {
    const s = samples[c] ?? [];
    console.log(
      `  ${c.padEnd(16)} ${median(s.map((x) => x.mbit))
        .toFixed(0)
        .padStart(6)} Mbit/s  ` +
        `daemons ${median(s.map((x) => x.daemonCpuPerGB)).toFixed(1)} CPU s/GB  ` +
        `iperf3 ${median(s.map((x) => x.iperfCpuPerGB)).toFixed(2)} CPU s/GB   [${f(s.map((x) => x.mbit))}]`,
    );
  }
  const base = names.includes('hand-detached') ? 'hand-detached' : names.find((n) => n !== 'mesh');
  for (const c of names.filter((n) => n !== base && base)) {
    const a = (samples[c] ?? []).map((x) => x.mbit);
    const b = (samples[base!] ?? []).map((x) => x.mbit);
    const paired = median(a.map((x, i) => x / (b[i] ?? NaN)));
    console.log(
      `  ${c}/${base} ${(median(a) / median(b)).toFixed(3)} (ratio of medians); median of paired ratios ${paired.toFixed(3)}`,
    );
  }
  console.log(
    `\nper repeat: ${JSON.stringify(samples, (_, v) => (typeof v === 'number' ? +v.toFixed(2) : v))}`,
  );
}

async function main(): Promise<void> {
  const names = (process.env.BENCH_CONDITIONS ?? 'mesh,hand-detached,hand,plain').split(',');
  for (const n of names)
    if (!CONDITIONS[n])
      throw new Error(`unknown condition ${n}: one of ${Object.keys(CONDITIONS).join(', ')}`);
  const prefix = uniquePrefix('h25bn');
  const t = await buildTopology(prefix, POD_MTU);
  const agents: WireguardAgent[] = [];
  const handPids: number[] = [];
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
    const paths: Paths = {
      mesh: {
        ifnames: agents.map((a) => a.activeDevice.ifname),
        pids: agents.map((a) => a.activeDevice.pid ?? 0),
        peerKeys: agents.map((_, i) => agents[1 - i]!.publicKey),
      },
      'hand-asagent': await startHandTunnel(
        t,
        { tag: 'u', port: 51892, detached: true, unshare: true, mtu: POD_MTU },
        handPids,
      ),
      hand: await startHandTunnel(
        t,
        { tag: 'a', port: 51890, detached: false, mtu: POD_MTU },
        handPids,
      ),
      'hand-detached': await startHandTunnel(
        t,
        { tag: 'd', port: 51891, detached: true, mtu: POD_MTU },
        handPids,
      ),
    };
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    const deadline = Date.now() + repeats * names.length * (seconds + 30) * 1000;
    for (let r = 0; r < repeats && Date.now() < deadline; r++) {
      for (let k = 0; k < names.length; k++) {
        const name = orderOf(names, r)[k]!;
        const s = await runCondition(t, CONDITIONS[name]!, paths, agents);
        samples[name]!.push(s);
        console.log(
          `repeat ${r + 1} ${name.padEnd(16)} ${s.mbit.toFixed(0).padStart(6)} Mbit/s  daemons ${s.daemonCpuPerGB.toFixed(1)} CPU s/GB  iperf3 ${s.iperfCpuPerGB.toFixed(2)} CPU s/GB`,
        );
      }
    }
    report(names, samples);
  } finally {
    for (const a of agents) await a.destroy().catch(() => {});
    await stopDaemons(handPids);
    await teardownTopology(t);
    const left = await leftovers(prefix);
    if (left.length) console.log(`left behind: ${left.join(', ')}`);
  }
}

await main();
