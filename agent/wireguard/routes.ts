// Steering: every other node's pod CIDRs (and stray pod IPs) route through the WireGuard device.
// Routes go to every remote node, with or without a configured peer: WireGuard drops a packet
// whose destination no peer owns (no key), so a node without a ready peer gets nothing, never
// plaintext. Interaction with agent/routing (native `podCIDR via nodeIP`, proto 186): with
// encryption on, the daemon must not hand remote nodes to the native routing reconciler (the two
// would replace each other's route for the same prefix); these routes carry proto 188.
import { mustRun, runCommand } from '../routing/command.ts';
import { ipIn } from './device.ts';
import { allowedIPsOf } from './peers.ts';
import type { WgNode } from './types.ts';

export const WG_ROUTE_PROTO = 188;

export interface TunnelRoute {
  dst: string;
  dev: string;
}

/** The routes this node needs: each remote node's allowed IPs via `dev`. */
export function tunnelRoutes(
  localName: string,
  nodes: Iterable<WgNode>,
  dev: string,
): TunnelRoute[] {
  const out = new Map<string, TunnelRoute>();
  for (const n of nodes)
    if (n.name !== localName) for (const dst of allowedIPsOf(n)) out.set(dst, { dst, dev });
  return [...out.values()].sort((a, b) => a.dst.localeCompare(b.dst));
}

/** Converges our routes (proto 188) in the node's main table: replace, then remove extras
 * (unless `prune: false`).
 * `ip route replace` moves a prefix between devices atomically (no window without a route). */
export async function applyTunnelRoutes(
  netns: string | undefined,
  routes: TunnelRoute[],
  o: { prune?: boolean } = {},
) {
  const lines = routes.map((r) => `route replace ${r.dst} dev ${r.dev} proto ${WG_ROUTE_PROTO}`);
  const want = new Set(routes.map((r) => r.dst));
  const owned = o.prune === false ? [] : await ownedRoutes(netns);
  const stale = owned.filter((d) => !want.has(d));
  lines.push(...stale.map((d) => `route del ${d} proto ${WG_ROUTE_PROTO}`));
  if (lines.length) await mustRun([...ipIn(netns, ['-batch', '-'])], lines.join('\n') + '\n');
}

/** Our routes (proto 188), all of them or those through `dev`. */
export async function ownedRoutes(netns: string | undefined, dev?: string): Promise<string[]> {
  const r = await runCommand(
    ipIn(netns, [
      ...['-json', 'route', 'show', 'proto', String(WG_ROUTE_PROTO)],
      ...(dev ? ['dev', dev] : []),
    ]),
  );
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as Array<{ dst: string }>).map((x) =>
    x.dst.includes('/') ? x.dst : `${x.dst}/32`,
  );
}

/** Device MTU: the underlay's minus WireGuard's overhead. Pod interfaces must use the same
 * value (or TCP MSS be clamped to it: `mssClampRule`), since a pod at the underlay MTU with DF
 * set depends on ICMP "fragmentation needed" reaching it to discover the smaller path. */
export function tunnelMtu(underlayMtu: number): number {
  return underlayMtu - 80;
}

/** iptables mangle rule (argv after `iptables`) clamping forwarded TCP SYNs into the tunnel. */
export function mssClampRule(dev: string): string[] {
  return [
    '-t',
    'mangle',
    '-A',
    'FORWARD',
    '-o',
    dev,
    '-p',
    'tcp',
    '--tcp-flags',
    'SYN,RST',
    'SYN',
    '-j',
    'TCPMSS',
    '--clamp-mss-to-pmtu',
  ];
}
