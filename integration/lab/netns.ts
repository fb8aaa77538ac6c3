// Namespace and link plumbing of the lab, through iproute2. Interfaces are created inside lab
// namespaces directly (`ip -n`), so the root namespace never holds a lab interface or address.
import { mustRun, runCommand } from '../../agent/routing/command.ts';

export const netnsPath = (name: string): string => `/run/netns/${name}`;

export async function listNetns(): Promise<string[]> {
  const result = await runCommand(['ip', '-json', 'netns', 'list']);
  if (result.code !== 0 || !result.stdout.trim()) return [];
  return (JSON.parse(result.stdout) as Array<{ name: string }>).map((n) => n.name);
}

/** Creates a namespace with its loopback up. */
export async function addNetns(name: string): Promise<void> {
  await mustRun(['ip', 'netns', 'add', name]);
  await mustRun(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

export async function deleteNetns(name: string): Promise<void> {
  const result = await runCommand(['ip', 'netns', 'del', name]);
  if (result.code !== 0 && !/No such file/.test(result.stderr))
    throw new Error(`cannot delete netns ${name}: ${result.stderr.trim()}`);
}

/** Runs iproute2 commands (one per line) in one namespace with a single process. */
export async function ipBatch(netns: string, lines: string[]): Promise<void> {
  if (lines.length) await mustRun(['ip', '-n', netns, '-batch', '-'], lines.join('\n') + '\n');
}

export interface UnderlayLink {
  host: string;
  underlayIf: string;
  ip: string;
  prefixLen: number;
}

/** A veth from the underlay bridge to `host` (eth0 there), with the host's underlay address. */
export async function linkToUnderlay(
  underlay: string,
  bridge: string,
  l: UnderlayLink,
): Promise<void> {
  await mustRun([
    'ip',
    '-n',
    underlay,
    'link',
    'add',
    l.underlayIf,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    netnsPath(l.host),
  ]);
  await ipBatch(underlay, [
    `link set dev ${l.underlayIf} master ${bridge}`,
    `link set dev ${l.underlayIf} up`,
  ]);
  await ipBatch(l.host, [`addr add ${l.ip}/${l.prefixLen} dev eth0`, 'link set dev eth0 up']);
}

export interface MountRow {
  source: string;
  target: string;
  type: string;
}

export function mountsUnder(dir: string, mounts: string): MountRow[] {
  return mounts
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => f.length >= 3 && (f[1] === dir || f[1]!.startsWith(dir + '/')))
    .map((f) => ({ source: f[0]!, target: f[1]!.replace(/\\040/g, ' '), type: f[2]! }));
}
