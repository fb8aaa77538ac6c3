// Test helper: what lab `name` left behind. Empty means teardown was complete.
import { existsSync, readFileSync } from 'node:fs';
import { runCommand } from '../../agent/routing/command.ts';
import ipaddr from 'ipaddr.js';
import { RUN_ROOT, type LabPlan } from './config.ts';
import { listNetns, mountsUnder } from './netns.ts';
import { pidsMatching } from './processes.ts';

/** Interface names of the root namespace (compare a snapshot before and after a lab). */
export async function rootLinks(): Promise<string[]> {
  const result = await runCommand(['ip', '-json', 'link', 'show']);
  return (JSON.parse(result.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

/**
 * What of a lab shows in the root namespace: interfaces named like the lab's (lxc veths, underlay
 * ports, the bridge) and addresses or routes inside the lab's ranges. Must always be empty.
 */
export async function rootFootprint(plan: LabPlan): Promise<string[]> {
  const ranges = [
    plan.underlay.cidr,
    ...plan.clusters.flatMap((c) => [c.podCIDR, c.serviceCIDR]),
  ].map((c) => ipaddr.IPv4.parseCIDR(c));
  const inLab = (ip: string | undefined) => {
    if (!ip || ip === 'default') return false;
    const addr = ip.split('/')[0]!;
    return (
      ipaddr.IPv4.isValidFourPartDecimal(addr) &&
      ranges.some((r) => ipaddr.IPv4.parse(addr).match(r))
    );
  };
  const found: string[] = [];
  for (const link of await rootLinks())
    if (/^lxc[0-9a-f]{11}$|^u\d+$|^br0$/.test(link)) found.push(`link ${link}`);
  const addrs = JSON.parse(
    (await runCommand(['ip', '-json', '-4', 'addr', 'show'])).stdout,
  ) as Array<{ ifname: string; addr_info: Array<{ local: string }> }>;
  for (const l of addrs)
    for (const a of l.addr_info)
      if (inLab(a.local)) found.push(`address ${a.local} on ${l.ifname}`);
  const routes = JSON.parse(
    (await runCommand(['ip', '-json', '-4', 'route', 'show', 'table', 'all'])).stdout,
  ) as Array<{ dst?: string; gateway?: string }>;
  for (const r of routes)
    if (inLab(r.dst) || inLab(r.gateway)) found.push(`route ${r.dst} via ${r.gateway ?? '-'}`);
  return found;
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
