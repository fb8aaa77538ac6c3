// Two node namespaces on a bridge namespace, a pod namespace behind each, a bpffs pin root: the
// fixture of the WireGuard privileged tests and the tunnel benchmark. Everything carries `prefix`.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { mustRun, runCommand } from '../../routing/command.ts';
import {
  addNetns,
  deleteNetns,
  ipBatch,
  linkToUnderlay,
  listNetns,
  netnsPath,
} from '../../../integration/lab/netns.ts';
import type { WgNode } from '../types.ts';

export const FLOW = fileURLToPath(new URL('./flow.mjs', import.meta.url));

export interface TestNode {
  index: number;
  name: string;
  ns: string;
  netns: string;
  ip: string;
  podCIDR: string;
  podNs: string;
  podNetns: string;
  podIP: string;
  stateDir: string;
}

export interface Topology {
  prefix: string;
  dir: string;
  pinRoots: string[];
  underlay: string;
  nodes: [TestNode, TestNode, ...TestNode[]];
}

export function uniquePrefix(tag: string): string {
  return `${tag}${randomBytes(3).toString('hex')}`;
}

export async function buildTopology(
  prefix: string,
  podMtu = 1420,
  nodeCount = 2,
): Promise<Topology> {
  const dir = `/tmp/${prefix}`;
  const underlay = `${prefix}-ul`;
  const topo: Topology = {
    prefix,
    dir,
    pinRoots: [],
    underlay,
    nodes: [
      node(prefix, 1),
      node(prefix, 2),
      ...Array.from({ length: nodeCount - 2 }, (_, i) => node(prefix, i + 3)),
    ],
  };
  await mkdir(dir, { recursive: true });
  await addNetns(underlay);
  await ipBatch(underlay, ['link add br0 type bridge', 'link set br0 up']);
  for (const n of topo.nodes) {
    await addNetns(n.ns);
    await linkToUnderlay(underlay, 'br0', {
      host: n.ns,
      underlayIf: `u${n.index}`,
      ip: n.ip,
      prefixLen: 24,
    });
    await mustRun(['nsenter', `--net=${n.netns}`, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await addNetns(n.podNs);
    await ipBatch(n.ns, [
      `link add p${n.index} type veth peer name eth0 netns ${n.podNetns}`,
      `link set p${n.index} up`,
      `addr add 10.251.${n.index}.1/32 dev p${n.index}`,
      `route add ${n.podIP}/32 dev p${n.index}`,
    ]);
    await ipBatch(n.podNs, [
      `addr add ${n.podIP}/32 dev eth0`,
      `link set eth0 mtu ${podMtu} up`,
      `route add 10.251.${n.index}.1/32 dev eth0`,
      `route add default via 10.251.${n.index}.1`,
    ]);
    await mkdir(n.stateDir, { recursive: true });
    const pin = `${dir}/bpf-n${n.index}`;
    await mkdir(pin, { recursive: true });
    await mustRun(['mount', '-t', 'bpf', 'bpf', pin]);
    topo.pinRoots.push(pin);
  }
  return topo;
}

function node(prefix: string, i: number): TestNode {
  return {
    index: i,
    name: `c1/n${i}`,
    ns: `${prefix}-n${i}`,
    netns: netnsPath(`${prefix}-n${i}`),
    ip: `10.250.0.${i}`,
    podCIDR: `10.251.${i}.0/24`,
    podNs: `${prefix}-p${i}`,
    podNetns: netnsPath(`${prefix}-p${i}`),
    podIP: `10.251.${i}.10`,
    stateDir: `/tmp/${prefix}/state-n${i}`,
  };
}

export const wgNodeOf = (n: TestNode, publicKey?: string): WgNode => ({
  name: n.name,
  nodeIP: n.ip,
  podCIDRs: [n.podCIDR],
  podIPs: [],
  publicKey,
});

/** Plain routing between the pods over the underlay (no tunnel). */
export async function plainRoutes(t: Topology): Promise<void> {
  const [a, b] = t.nodes;
  await ipBatch(a.ns, [`route replace ${b.podCIDR} via ${b.ip}`]);
  await ipBatch(b.ns, [`route replace ${a.podCIDR} via ${a.ip}`]);
}

export async function teardownTopology(t: Topology): Promise<void> {
  for (const n of [...t.nodes].reverse()) {
    await deleteNetns(n.podNs);
    await deleteNetns(n.ns);
  }
  await deleteNetns(t.underlay);
  for (const pin of t.pinRoots) await runCommand(['umount', pin]);
  await rm(t.dir, { recursive: true, force: true });
}

/** Namespaces and mounts still carrying the prefix (empty after a clean teardown). */
export async function leftovers(prefix: string): Promise<string[]> {
  const ns = (await listNetns()).filter((n) => n.startsWith(prefix));
  const mounts = (await mustRun(['cat', '/proc/self/mounts']))
    .split('\n')
    .filter((l) => l.includes(`/tmp/${prefix}`));
  const procs = (await runCommand(['pgrep', '-f', `/tmp/${prefix}/`])).stdout
    .trim()
    .split('\n')
    .filter(Boolean);
  return [...ns, ...mounts, ...procs.map((p) => `process ${p}`)];
}

/** A process started in a namespace, ended by its own PID. */
export class NsProcess {
  readonly child: ChildProcess;
  private out = '';
  readonly exited: Promise<number>;
  constructor(netns: string, argv: string[]) {
    this.child = spawn('nsenter', [`--net=${netns}`, '--', ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.exited = new Promise((r) => this.child.on('close', (code) => r(code ?? -1)));
  }
  get output(): string {
    return this.out;
  }
  lines(): Array<Record<string, unknown>> {
    return this.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  }
  async waitFor(pred: (out: string) => boolean, ms = 5000): Promise<void> {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (pred(this.out)) return;
    throw new Error(`timed out waiting on ${this.child.spawnargs.join(' ')}: ${this.out}`);
  }
  stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
    const running = this.child.exitCode === null && this.child.signalCode === null;
    if (running && this.child.pid) process.kill(this.child.pid, signal);
    return this.exited;
  }
}

/** tcpdump on every port of the underlay namespace (forwarded frames never pass br0 itself). */
export async function capture(t: Topology, name: string): Promise<{ stop(): Promise<string> }> {
  const file = `${t.dir}/${name}.pcap`;
  const p = new NsProcess(netnsPath(t.underlay), [
    'tcpdump',
    '-i',
    'any',
    '--immediate-mode',
    '-U',
    '-n',
    '-w',
    file,
  ]);
  await p.waitFor((o) => o.includes('listening on'));
  return {
    async stop() {
      await sleep(200);
      await p.stop('SIGINT');
      return file;
    },
  };
}

/** Packets in a pcap matching a tcpdump filter. */
export async function countPackets(file: string, filter: string): Promise<number> {
  const r = await runCommand(['tcpdump', '-r', file, '-n', filter]);
  return r.stdout.split('\n').filter(Boolean).length;
}
