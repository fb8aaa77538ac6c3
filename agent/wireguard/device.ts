// The WireGuard device of a node: kernel WireGuard where `ip link add type wireguard` works,
// wireguard-go otherwise. wireguard-go runs detached in its own mount namespace whose
// /run/wireguard is a bind mount of <stateDir>/wireguard, so its UAPI socket is private to the
// node and visible at a per-node path; the process outlives the agent and the next agent adopts
// it from a record (PID + start time + network namespace), so a restart never drops the tunnel.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun, runCommand } from '../routing/command.ts';
import { WgTool, enterDevice } from './wg-tool.ts';
import { WireguardError, type DeviceSlot } from './types.ts';

export interface DeviceOptions {
  slot: DeviceSlot;
  /** /run/netns/NAME of the node; undefined = the caller's namespace */
  netns?: string;
  stateDir: string;
  /** base64 private key (keys.ts) */
  privateKey: string;
  mtu: number;
  /** 'auto' tries the kernel first */
  mode?: 'auto' | 'wireguard-go';
}

export interface Device {
  ifname: string;
  port: number;
  mode: 'kernel' | 'wireguard-go';
  pid: number | null;
  adopted: boolean;
  control: WgTool;
}

interface DeviceRecord {
  ifname: string;
  pid: number;
  startTime: string;
  netnsInode: number;
}

export const wgRunDir = (stateDir: string): string => join(stateDir, 'wireguard');
const recordPath = (stateDir: string, ifname: string): string =>
  join(wgRunDir(stateDir), `${ifname}.json`);
export const socketPath = (stateDir: string, ifname: string): string =>
  join(wgRunDir(stateDir), `${ifname}.sock`);

/** Creates or adopts the device and applies key, port, MTU and link up (all idempotent). */
export async function ensureDevice(o: DeviceOptions): Promise<Device> {
  await mkdir(wgRunDir(o.stateDir), { recursive: true, mode: 0o700 });
  const device = (await adopt(o)) ?? (await create(o));
  await device.control.setDevice({ privateKey: o.privateKey, listenPort: o.slot.port });
  await mustRun(ipIn(o.netns, ['link', 'set', 'dev', o.slot.ifname, 'mtu', String(o.mtu), 'up']));
  return device;
}

/** Takes the device down for good (tests, node decommission, retiring a rotated key). */
export async function destroyDevice(o: { netns?: string; stateDir: string; ifname: string }) {
  const rec = await readRecord(o.stateDir, o.ifname);
  if (rec && (await isOurProcess(rec, o.netns))) await endPid(rec.pid);
  await runCommand(ipIn(o.netns, ['link', 'del', 'dev', o.ifname]));
  await rm(recordPath(o.stateDir, o.ifname), { force: true });
}

/** The slot's running device, or null (no live wireguard-go of ours, no kernel link): for a
 * device that must not be created again, e.g. one being retired after a rotation. */
export async function adoptDevice(o: AdoptOptions): Promise<Device | null> {
  return adopt(o);
}

type AdoptOptions = Pick<DeviceOptions, 'slot' | 'netns' | 'stateDir'>;

async function adopt(o: AdoptOptions): Promise<Device | null> {
  const { ifname, port } = o.slot;
  const rec = await readRecord(o.stateDir, ifname);
  if (rec && (await isOurProcess(rec, o.netns)) && (await linkKind(o.netns, ifname)) === 'tun')
    return deviceOf(o, 'wireguard-go', rec.pid, true);
  if ((await linkKind(o.netns, ifname)) === 'wireguard')
    return { ifname, port, mode: 'kernel', pid: null, adopted: true, control: tool(o, null) };
  return null;
}

async function create(o: DeviceOptions): Promise<Device> {
  const { ifname } = o.slot;
  const kind = await linkKind(o.netns, ifname);
  if (kind !== null) await mustRun(ipIn(o.netns, ['link', 'del', 'dev', ifname])); // orphan
  if (o.mode !== 'wireguard-go') {
    const r = await runCommand(ipIn(o.netns, ['link', 'add', ifname, 'type', 'wireguard']));
    if (r.code === 0) return deviceOf(o, 'kernel', null, false);
  }
  const pid = await spawnWireguardGo(o);
  return deviceOf(o, 'wireguard-go', pid, false);
}

function deviceOf(o: AdoptOptions, mode: Device['mode'], pid: number | null, adopted: boolean) {
  return { ifname: o.slot.ifname, port: o.slot.port, mode, pid, adopted, control: tool(o, pid) };
}

function tool(o: AdoptOptions, pid: number | null): WgTool {
  return new WgTool({ ifname: o.slot.ifname, netns: o.netns, pid });
}

async function spawnWireguardGo(o: DeviceOptions): Promise<number> {
  const { ifname } = o.slot;
  const dir = wgRunDir(o.stateDir);
  await rm(socketPath(o.stateDir, ifname), { force: true });
  await mkdir('/run/wireguard', { recursive: true }); // mount point only; stays empty here
  const script = 'mount --bind "$1" /run/wireguard && exec wireguard-go -f "$2"';
  const inner = ['unshare', '-m', '--propagation', 'private', '--'];
  const argv = enterDevice({ ifname, netns: o.netns }, [
    ...inner,
    'sh',
    '-c',
    script,
    'sh',
    dir,
    ifname,
  ]);
  const log = openSync(join(dir, `${ifname}.log`), 'a');
  const [cmd, ...args] = argv;
  // detached: its own session, so signals to the agent's process group never reach it
  const child = spawn(cmd ?? 'nsenter', args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, LOG_LEVEL: 'error' },
  });
  closeSync(log);
  child.unref();
  const pid = child.pid;
  if (!pid) throw new WireguardError('ISTHMUS_WG_SPAWN', `cannot start wireguard-go for ${ifname}`);
  await waitForSocket(o.stateDir, ifname, pid);
  await writeRecord(o.stateDir, {
    ifname,
    pid,
    startTime: startTimeOf(await readFile(`/proc/${pid}/stat`, 'utf8')),
    netnsInode: await netnsInode(o.netns),
  });
  return pid;
}

async function waitForSocket(stateDir: string, ifname: string, pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await exists(socketPath(stateDir, ifname))) return;
    if (!(await exists(`/proc/${pid}`))) break;
    await sleep(50);
  }
  throw new WireguardError(
    'ISTHMUS_WG_SPAWN',
    `wireguard-go for ${ifname} did not open its socket: see ${join(wgRunDir(stateDir), ifname + '.log')}`,
  );
}

/** The recorded PID is alive, is the same process (start time), runs wireguard-go for this
 * interface and lives in this node's network namespace. */
async function isOurProcess(rec: DeviceRecord, netns: string | undefined): Promise<boolean> {
  try {
    const statText = await readFile(`/proc/${rec.pid}/stat`, 'utf8');
    const cmdline = (await readFile(`/proc/${rec.pid}/cmdline`, 'utf8')).split('\0');
    const nsIno = (await stat(`/proc/${rec.pid}/ns/net`)).ino;
    return (
      startTimeOf(statText) === rec.startTime &&
      cmdline.some((a) => a.endsWith('wireguard-go')) &&
      cmdline.includes(rec.ifname) &&
      nsIno === (await netnsInode(netns))
    );
  } catch {
    return false;
  }
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised command name). */
export function startTimeOf(statText: string): string {
  return statText.slice(statText.lastIndexOf(')') + 2).split(' ')[19] ?? '';
}

async function netnsInode(netns: string | undefined): Promise<number> {
  return (await stat(netns ?? '/proc/self/ns/net')).ino;
}

/** 'wireguard' (kernel), 'tun' (wireguard-go), another kind, or null when absent. */
async function linkKind(netns: string | undefined, ifname: string): Promise<string | null> {
  const r = await runCommand(ipIn(netns, ['-d', '-json', 'link', 'show', 'dev', ifname]));
  if (r.code !== 0) return null;
  const rows = JSON.parse(r.stdout) as Array<{ linkinfo?: { info_kind?: string } }>;
  return rows[0]?.linkinfo?.info_kind ?? 'unknown';
}

async function endPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 60 && (await exists(`/proc/${pid}`)); i++) await sleep(50);
  if (await exists(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
}

async function readRecord(stateDir: string, ifname: string): Promise<DeviceRecord | null> {
  try {
    return JSON.parse(await readFile(recordPath(stateDir, ifname), 'utf8')) as DeviceRecord;
  } catch {
    return null;
  }
}

async function writeRecord(stateDir: string, rec: DeviceRecord): Promise<void> {
  const path = recordPath(stateDir, rec.ifname);
  await writeFile(path + '.tmp', JSON.stringify(rec) + '\n', { mode: 0o600 });
  await rename(path + '.tmp', path);
}

/** iproute2 argv in the node's namespace (`ip -n` for /run/netns names, nsenter otherwise). */
export function ipIn(netns: string | undefined, args: string[]): string[] {
  if (!netns) return ['ip', ...args];
  const m = /^\/run\/netns\/([^/]+)$/.exec(netns);
  return m?.[1] ? ['ip', '-n', m[1], ...args] : ['nsenter', `--net=${netns}`, '--', 'ip', ...args];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
