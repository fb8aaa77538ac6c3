// The pod's link to its node, through iproute2: a veth pair whose host side (lxc<hash>) stays in
// the node's namespace and whose peer becomes the pod's interface.
//
// Gateway choice: every host-side veth carries the node's router IP (first address of the node's
// pod CIDR) as a /32, and the pod gets its address as a /32 with `default via <router IP>` and an
// on-link route to it. The pod ARPs for the router IP and the node answers on that veth; the node
// reaches the pod through a /32 route on the veth. No bridge and no proxy ARP, and node-to-pod
// traffic leaves from the router IP, which the ipcache can map to the host identity (as Cilium
// does with cilium_host's address).
import { createHash } from 'node:crypto';
import { inNetns, mustRun, runCommand, CommandError } from '../routing/command.ts';
import type { LinkInfo, PodLinkPlan, PodLinks } from './types.ts';

/** Protocol tag of per-pod /32 routes (distinct from node routes, which routing prunes). */
export const ENDPOINT_ROUTE_PROTO = 187;

/** Host-side veth name: "lxc" + 11 hex digits of a hash of the attachment (15-char limit). */
export function hostIfname(containerId: string, ifname: string): string {
  return 'lxc' + createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11);
}

export async function linkInfo(ifname: string, netns?: string): Promise<LinkInfo | undefined> {
  const result = await runCommand(inNetns(netns, ['ip', '-json', 'link', 'show', 'dev', ifname]));
  if (result.code !== 0) return undefined;
  const [link] = JSON.parse(result.stdout) as Array<{ ifindex: number; address: string }>;
  return link ? { ifindex: link.ifindex, mac: link.address } : undefined;
}

/** Deletes a link if present (its veth peer and routes go with it). */
export async function deleteLink(ifname: string): Promise<void> {
  const argv = ['ip', 'link', 'del', 'dev', ifname];
  const result = await runCommand(argv);
  if (result.code !== 0 && !/Cannot find device|does not exist/.test(result.stderr))
    throw new CommandError(argv, result);
}

/** Creates and configures both ends; throws with the failing command on error (caller rolls back). */
export async function createPodLink(p: PodLinkPlan): Promise<{ host: LinkInfo; pod: LinkInfo }> {
  await mustRun([
    'ip',
    'link',
    'add',
    p.host,
    'type',
    'veth',
    'peer',
    'name',
    p.pod,
    'netns',
    p.netns,
  ]);
  await mustRun(
    ['ip', '-batch', '-'],
    [
      `link set dev ${p.host} up`,
      `addr add ${p.routerIP}/32 dev ${p.host} scope link`,
      `route replace ${p.ip}/32 dev ${p.host} scope link src ${p.routerIP} proto ${ENDPOINT_ROUTE_PROTO}`,
    ].join('\n'),
  );
  await mustRun(
    inNetns(p.netns, ['ip', '-batch', '-']),
    [
      'link set dev lo up',
      `link set dev ${p.pod} up`,
      `addr add ${p.ip}/32 dev ${p.pod}`,
      `route add ${p.routerIP}/32 dev ${p.pod} scope link`,
      `route add default via ${p.routerIP} dev ${p.pod}`,
    ].join('\n'),
  );
  const host = await linkInfo(p.host);
  const pod = await linkInfo(p.pod, p.netns);
  if (!host || !pod) throw new Error(`veth ${p.host} vanished while it was being set up`);
  return { host, pod };
}

/** True when the pod interface exists in the namespace and holds the address. */
export async function podHasAddress(netns: string, ifname: string, ip: string): Promise<boolean> {
  const result = await runCommand(
    inNetns(netns, ['ip', '-json', '-4', 'addr', 'show', 'dev', ifname]),
  );
  if (result.code !== 0) return false;
  const links = JSON.parse(result.stdout) as Array<{ addr_info?: Array<{ local: string }> }>;
  return links.some((l) => l.addr_info?.some((a) => a.local === ip) ?? false);
}

/** PodLinks through iproute2, in the agent's (the node's) network namespace. */
export const iprouteLinks: PodLinks = {
  create: createPodLink,
  remove: deleteLink,
  hostLink: (ifname) => linkInfo(ifname),
  podHasAddress,
  listHostLinks,
};

const HOST_IFNAME = /^lxc[0-9a-f]{11}$/;

async function listHostLinks(): Promise<string[]> {
  const out = await mustRun(['ip', '-json', 'link', 'show', 'type', 'veth']);
  return (JSON.parse(out || '[]') as Array<{ ifname: string }>)
    .map((l) => l.ifname)
    .filter((n) => HOST_IFNAME.test(n));
}
