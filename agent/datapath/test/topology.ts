// A tiny node for the datapath's privileged tests: one "node" netns with a bpffs pin root and
// N "pod" netns attached by veth pairs (/32 routes, Cilium-style link-local gateway). Nothing is
// added to the root namespace except the bpffs mount under /run; destroy() removes everything
// and returns what it could not remove.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const tool = join(dirname(fileURLToPath(import.meta.url)), 'net-tool.py');
const PYTHON = '/usr/bin/python3';

export interface Pod {
  index: number;
  netns: string;
  netnsPath: string;
  ip: string;
  /** host-side veth, in the node namespace */
  hostIf: string;
  ifindex: number;
}

export interface Topology {
  id: string;
  nodeNetns: string;
  nodeNetnsPath: string;
  nodeIp: string;
  pinRoot: string;
  pods: Pod[];
  /** Runs net-tool.py in a namespace to completion; returns its last JSON line. */
  tool(netnsPath: string, args: string[], timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Starts net-tool.py in the background; resolves once it printed its first line. */
  background(netnsPath: string, args: string[]): Promise<Background>;
  destroy(): Promise<string[]>;
}

export interface Background {
  proc: ChildProcess;
  lines: Array<Record<string, unknown>>;
  /** resolves with the first line (already seen or future) matching pred */
  waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<void>;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

function nsenter(path: string, ...cmd: string[]): void {
  const r = spawnSync('nsenter', [`--net=${path}`, ...cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} in ${path} failed: ${r.stderr.trim()}`);
}

export function ifindexOf(netns: string, ifname: string): number {
  const r = spawnSync('ip', ['-n', netns, '-j', 'link', 'show', 'dev', ifname], {
    encoding: 'utf8',
  });
  const parsed = JSON.parse(r.stdout) as Array<{ ifindex: number }>;
  const first = parsed[0];
  if (!first) throw new Error(`no interface ${ifname} in ${netns}`);
  return first.ifindex;
}

export async function createTopology(podCount: number): Promise<Topology> {
  const id = `h1dp${randomBytes(3).toString('hex')}`;
  const nodeNetns = `${id}-node`;
  const pinRoot = `/run/${id}-bpf`;
  const children = new Set<ChildProcess>();
  const pods: Pod[] = [];
  const topo: Topology = {
    id,
    nodeNetns,
    nodeNetnsPath: `/run/netns/${nodeNetns}`,
    nodeIp: '10.213.255.1',
    pinRoot,
    pods,
    tool: (path, args, timeoutMs = 10_000) => runTool(children, path, args, timeoutMs),
    background: (path, args) => startTool(children, path, args),
    destroy: () => destroy(id, podCount, pinRoot, children),
  };
  try {
    ip('netns', 'add', nodeNetns);
    mkdirSync(pinRoot);
    const m = spawnSync('mount', ['-t', 'bpf', 'bpf', pinRoot], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount bpffs on ${pinRoot} failed: ${m.stderr}`);
    ip('-n', nodeNetns, 'link', 'set', 'lo', 'up');
    // The node IP lives on lo (no dummy module on these machines).
    ip('-n', nodeNetns, 'addr', 'add', `${topo.nodeIp}/32`, 'dev', 'lo');
    nsenter(topo.nodeNetnsPath, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (let i = 1; i <= podCount; i++) pods.push(addPod(id, nodeNetns, topo.nodeIp, i));
    return topo;
  } catch (e) {
    await topo.destroy();
    throw e;
  }
}

function addPod(id: string, nodeNetns: string, nodeIp: string, i: number): Pod {
  const netns = `${id}-p${i}`;
  const hostIf = `lxc${i}`;
  const podIp = `10.213.0.${i}`;
  ip('netns', 'add', netns);
  ip(
    '-n',
    nodeNetns,
    'link',
    'add',
    hostIf,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    netns,
  );
  ip('-n', nodeNetns, 'addr', 'add', '169.254.1.1/32', 'dev', hostIf);
  ip('-n', nodeNetns, 'link', 'set', hostIf, 'up');
  ip('-n', nodeNetns, 'route', 'add', `${podIp}/32`, 'dev', hostIf, 'src', nodeIp);
  ip('-n', netns, 'link', 'set', 'lo', 'up');
  ip('-n', netns, 'addr', 'add', `${podIp}/32`, 'dev', 'eth0');
  ip('-n', netns, 'link', 'set', 'eth0', 'up');
  ip('-n', netns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  ip('-n', netns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  return {
    index: i,
    netns,
    netnsPath: `/run/netns/${netns}`,
    ip: podIp,
    hostIf,
    ifindex: ifindexOf(nodeNetns, hostIf),
  };
}

function spawnTool(children: Set<ChildProcess>, path: string, args: string[]): ChildProcess {
  const proc = spawn('nsenter', [`--net=${path}`, PYTHON, tool, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
  return proc;
}

function runTool(
  children: Set<ChildProcess>,
  path: string,
  args: string[],
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const proc = spawnTool(children, path, args);
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop();
      if (code !== 0 || !last)
        reject(new Error(`net-tool ${args.join(' ')} exited ${code}: ${err.trim()}`));
      else resolve(JSON.parse(last) as Record<string, unknown>);
    });
  });
}

function startTool(children: Set<ChildProcess>, path: string, args: string[]): Promise<Background> {
  const proc = spawnTool(children, path, args);
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as Record<string, unknown>);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs: number) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const deadline = setTimeout(
        () => reject(new Error(`net-tool ${args.join(' ')}: no matching line`)),
        timeoutMs,
      );
      const check = (): void => {
        const hit = lines.find(pred);
        if (hit) {
          clearTimeout(deadline);
          resolve(hit);
        } else waiters.push(check);
      };
      check();
    });
  const bg: Background = { proc, lines, waitFor, exited };
  return waitFor(() => true, 10_000).then(() => bg);
}

async function destroy(
  id: string,
  podCount: number,
  pinRoot: string,
  children: Set<ChildProcess>,
): Promise<string[]> {
  for (const c of children) if (c.pid) process.kill(c.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 50));
  for (let i = 1; i <= podCount; i++) spawnSync('ip', ['netns', 'del', `${id}-p${i}`]);
  spawnSync('ip', ['netns', 'del', `${id}-node`]);
  if (existsSync(pinRoot)) {
    spawnSync('umount', [pinRoot]);
    try {
      rmdirSync(pinRoot);
    } catch {
      /* reported below */
    }
  }
  return leftovers(id, pinRoot);
}

/** Anything of this topology still present: netns, mount, directory. */
export function leftovers(id: string, pinRoot: string): string[] {
  const left: string[] = [];
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  for (const line of netns.split('\n'))
    if (line.startsWith(id)) left.push(`netns ${line.split(' ')[0]}`);
  if (readFileSync('/proc/self/mounts', 'utf8').includes(` ${pinRoot} `))
    left.push(`mount ${pinRoot}`);
  if (existsSync(pinRoot)) left.push(`directory ${pinRoot}`);
  return left;
}
