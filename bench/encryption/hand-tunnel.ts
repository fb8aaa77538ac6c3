// The benchmark's reference: a wireguard-go tunnel between the two node namespaces configured by
// hand with plain `wg` and `ip` commands, nothing of the mesh. Two ways to start the daemons:
// `attached` (a child of the benchmark, in its session) and `detached` (its own session, as the
// agent starts the mesh's daemon so it outlives the agent). With the kernel's autogroup
// scheduling (/proc/sys/kernel/sched_autogroup_enabled) a session is a scheduling group, so the
// two differ in how the CPU is shared, not in the packet path.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun, runCommand } from '../../agent/routing/command.ts';
import { generateKey } from '../../agent/wireguard/keys.ts';
import { ipBatch } from '../../integration/lab/netns.ts';

/** A node namespace the tunnel joins (a subset of the WireGuard test fixture's TestNode). */
export interface HandNode {
  index: number;
  /** namespace name and /run/netns path */
  ns: string;
  netns: string;
  /** underlay address and the pod CIDR behind it */
  ip: string;
  podCIDR: string;
}

/** Where the tunnel goes: two nodes; `prefix` names the interfaces, `dir` holds keys and logs. */
export interface HandSite {
  prefix: string;
  dir: string;
  nodes: HandNode[];
}

export interface HandTunnel {
  /** interface name per node (index as in t.nodes) */
  ifnames: string[];
  pids: number[];
  /** the public key of node i's peer (the other node) */
  peerKeys: string[];
}

export interface HandTunnelOptions {
  tag: string;
  port: number;
  detached: boolean;
  /** in a private mount namespace with /run/wireguard bind-mounted, as device.ts starts it */
  unshare?: boolean;
  /** extra environment of the daemons (e.g. GOMAXPROCS) */
  env?: Record<string, string>;
  mtu: number;
}

/** Starts and configures the tunnel; `pids` is filled as daemons start so a failure half-way
 * still lets the caller end them. Unique interface names: /run/wireguard is machine-wide. */
export async function startHandTunnel(
  t: HandSite,
  o: HandTunnelOptions,
  pids: number[],
): Promise<HandTunnel> {
  const ifnames = t.nodes.map((n) => `${t.prefix.slice(-6)}${o.tag}${n.index}`);
  const keys = t.nodes.map(() => generateKey());
  const mine: number[] = [];
  for (const [i, n] of t.nodes.entries()) {
    const ifname = ifnames[i]!;
    const pid = spawnDaemon(t, n, ifname, o);
    pids.push(pid);
    mine.push(pid);
    await waitForSocket(
      o.unshare ? `${t.dir}/${o.tag}-run/${ifname}.sock` : `/run/wireguard/${ifname}.sock`,
    );
  }
  for (const [i, n] of t.nodes.entries()) {
    const other = t.nodes[1 - i]!;
    const keyFile = `${t.dir}/${o.tag}-${i}.key`;
    await mustRun(['sh', '-c', `umask 077; echo ${keys[i]!.privateKey} > ${keyFile}`]);
    await mustRun([
      'nsenter',
      `--net=${n.netns}`,
      ...(o.unshare ? [`--mount=/proc/${mine[i]}/ns/mnt`] : []),
      'wg',
      'set',
      ifnames[i]!,
      'listen-port',
      String(o.port),
      'private-key',
      keyFile,
      'peer',
      keys[1 - i]!.publicKey,
      'endpoint',
      `${other.ip}:${o.port}`,
      'allowed-ips',
      other.podCIDR,
    ]);
    await ipBatch(n.ns, [`link set ${ifnames[i]} mtu ${o.mtu} up`]);
  }
  return { ifnames, pids: mine, peerKeys: t.nodes.map((_, i) => keys[1 - i]!.publicKey) };
}

function spawnDaemon(t: HandSite, n: HandNode, ifname: string, o: HandTunnelOptions): number {
  const log = openSync(`${t.dir}/${ifname}.log`, 'a');
  const run = `${t.dir}/${o.tag}-run`;
  mkdirSync(run, { recursive: true });
  const daemon = o.unshare
    ? [
        'unshare',
        '-m',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'mount --bind "$1" /run/wireguard && exec wireguard-go -f "$2"',
        'sh',
        run,
        ifname,
      ]
    : ['wireguard-go', '-f', ifname];
  const child = spawn('nsenter', [`--net=${n.netns}`, '--', ...daemon], {
    detached: o.detached,
    stdio: ['ignore', log, log],
    env: { ...process.env, ...o.env },
  });
  closeSync(log);
  child.unref();
  if (!child.pid) throw new Error(`cannot start wireguard-go for ${ifname}`);
  return child.pid;
}

async function waitForSocket(sock: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await runCommand(['test', '-S', sock])).code === 0) return;
    await sleep(50);
  }
  throw new Error(`wireguard-go did not open ${sock}`);
}

/** Ends the daemons by PID (SIGTERM, then SIGKILL after 3 s). */
export async function stopDaemons(pids: number[]): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  for (let i = 0; i < 60 && pids.some(alive); i++) await sleep(50);
  for (const pid of pids.filter(alive)) signal(pid, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
