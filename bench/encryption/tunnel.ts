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
import { iperf, orderOf, report, sampleLine, type Sample } from './measure.ts';

const seconds = Math.min(Number(process.argv[2] ?? 3), 30);
const repeats = Math.min(Number(process.argv[3] ?? 9), 25);
const POD_MTU = 1420;

type HandPath = 'hand' | 'hand-detached' | 'hand-asagent' | 'hand-gomaxprocs1';
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
  // hand-made (detached), the Go runtime on one thread (GOMAXPROCS=1) instead of one per core
  'hand-gomaxprocs1': { path: 'hand-gomaxprocs1', strict: false, keepalive: false },
  // hand-made (detached) with the mesh's strict filter on the underlays
  'hand-strict': { path: 'hand-detached', strict: true, keepalive: false },
  // hand-made (detached) with the mesh's keepalive
  'hand-keepalive': { path: 'hand-detached', strict: false, keepalive: true },
  plain: { path: 'plain', strict: false, keepalive: false },
};

/** A tunnel between the two nodes: its devices, daemons and peer keys (index as in t.nodes). */
type TunnelPath = HandTunnel;
type Paths = Record<'mesh' | HandPath, TunnelPath>;

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

async function runCondition(t: Topology, c: Condition, p: Paths): Promise<Sample> {
  const dev = await route(t, c.path, p);
  const strict = c.strict ? await attachStrict(t) : [];
  const tunnel = c.path === 'plain' ? undefined : p[c.path];
  const toggle = tunnel && c.keepalive !== (c.path === 'mesh');
  if (toggle) await setKeepalive(t, tunnel, c.keepalive);
  try {
    const [a, b] = t.nodes;
    return await iperf({
      clientNetns: a.podNetns,
      serverNetns: b.podNetns,
      serverIP: b.podIP,
      seconds,
      flush: [a.podNs, b.podNs],
      countOn: { ns: a.ns, dev },
      daemons: tunnel?.pids ?? [],
    });
  } finally {
    for (const f of strict) f.detach();
    if (toggle) await setKeepalive(t, tunnel, !c.keepalive);
  }
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
      'hand-gomaxprocs1': await startHandTunnel(
        t,
        { tag: 'g', port: 51893, detached: true, env: { GOMAXPROCS: '1' }, mtu: POD_MTU },
        handPids,
      ),
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
        const s = await runCondition(t, CONDITIONS[name]!, paths);
        samples[name]!.push(s);
        console.log(`repeat ${r + 1} ${sampleLine(name, s)}`);
      }
    }
    console.log(
      `\nmedians of ${repeats} interleaved repeats, ${seconds} s each after 1 s omitted (iperf3, one TCP stream, pod MTU ${POD_MTU}):`,
    );
    const base = names.includes('hand-detached') ? 'hand-detached' : names[0]!;
    report(base, names, samples);
    console.log(
      `\nper repeat: ${JSON.stringify(samples, (_, v) => (typeof v === 'number' ? +v.toFixed(2) : v))}`,
    );
  } finally {
    for (const a of agents) await a.destroy().catch(() => {});
    await stopDaemons(handPids);
    await teardownTopology(t);
    const left = await leftovers(prefix);
    if (left.length) console.log(`left behind: ${left.join(', ')}`);
  }
}

await main();
