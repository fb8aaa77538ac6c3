// Test helper: what lab `name` left behind. Empty means teardown was complete.
import { existsSync, readFileSync } from 'node:fs';
import { runCommand } from '../../agent/routing/command.ts';
import { RUN_ROOT } from './config.ts';
import { listNetns, mountsUnder } from './netns.ts';
import { pidsMatching } from './processes.ts';

/** Interface names of the root namespace (compare a snapshot before and after a lab). */
export async function rootLinks(): Promise<string[]> {
  const result = await runCommand(['ip', '-json', 'link', 'show']);
  return (JSON.parse(result.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

/** IPv4 addresses and routes of the root namespace, as text. */
export async function rootAddressing(): Promise<string> {
  const addrs = await runCommand(['ip', '-4', '-o', 'addr', 'show']);
  const routes = await runCommand(['ip', '-4', 'route', 'show', 'table', 'all']);
  return addrs.stdout.replace(/valid_lft.*$/gm, '') + routes.stdout;
}

export async function labLeftovers(name: string): Promise<string[]> {
  const runDir = `${RUN_ROOT}/${name}`;
  const found: string[] = [];
  for (const ns of await listNetns()) if (ns.startsWith(`${name}-`)) found.push(`netns ${ns}`);
  for (const m of mountsUnder(runDir, readFileSync('/proc/mounts', 'utf8')))
    found.push(`mount ${m.type} on ${m.target}`);
  if (existsSync(runDir)) found.push(`directory ${runDir}`);
  for (const pid of pidsMatching([`${runDir}/`, `/run/netns/${name}-`]))
    found.push(`process ${pid}`);
  return found;
}
