// Pod IPs a node hosts outside its pod CIDRs (issue 6 item 2): the ipcache rows whose host IP is
// that node, local and remote alike. They become /32 allowed IPs of the node's WireGuard peer.
// Indexed by host IP and cached per node, so a table pass costs O(nodes) while nothing changed.
import ipaddr from 'ipaddr.js';
import type { IpcacheTable } from '../ipcache/table.ts';
import type { IpcacheEntry } from '../ipcache/types.ts';
import { MIN_LOCAL_IDENTITY } from '../identity/types.ts';

export class HostedPodIPs {
  /** host IP -> pod IPv4 addresses it hosts */
  private readonly byHost = new Map<string, Set<string>>();
  /** pod IP -> its host IP, to move or drop it on change */
  private readonly hostOf = new Map<string, string>();
  /** host IP -> last answer for a set of pod CIDRs; dropped when the host's pods change */
  private readonly cache = new Map<string, { cidrs: string; ips: string[] }>();

  /** Follows the ipcache (current rows first); `changed` after each relevant change. */
  follow(ipcache: IpcacheTable, changed: () => void): () => void {
    for (const [cidr, entry] of ipcache.all()) this.apply(cidr, entry);
    changed();
    return ipcache.onChange((cidr, entry) => {
      if (this.apply(cidr, entry)) changed();
    });
  }

  /** Records one row; true when a host's set of pod IPs changed. */
  apply(cidr: string, entry: IpcacheEntry | undefined): boolean {
    if (!cidr.endsWith('/32')) return false;
    const ip = cidr.slice(0, -3);
    const host = entry && podHost(ip, entry);
    const before = this.hostOf.get(ip);
    if (before === host) return false;
    if (before) this.remove(ip, before);
    if (host) {
      this.hostOf.set(ip, host);
      const set = this.byHost.get(host) ?? new Set();
      this.byHost.set(host, set.add(ip));
      this.cache.delete(host);
    }
    return true;
  }

  /** The pod IPs hosted on `host` that none of its `podCIDRs` covers, sorted. */
  outside(host: string, podCIDRs: string[]): string[] {
    const key = podCIDRs.join(',');
    const hit = this.cache.get(host);
    if (hit && hit.cidrs === key) return hit.ips;
    const nets = podCIDRs.flatMap((c) =>
      ipaddr.IPv4.isValidCIDR(c) ? [ipaddr.IPv4.parseCIDR(c)] : [],
    );
    const ips = [...(this.byHost.get(host) ?? [])]
      .filter((ip) => !nets.some((n) => ipaddr.IPv4.parse(ip).match(n)))
      .sort();
    this.cache.set(host, { cidrs: key, ips });
    return ips;
  }

  private remove(ip: string, host: string): void {
    this.hostOf.delete(ip);
    const set = this.byHost.get(host);
    set?.delete(ip);
    if (set && !set.size) this.byHost.delete(host);
    this.cache.delete(host);
  }
}

/** The host of a pod row: IPv4, a pod identity, hosted elsewhere than at its own address (a
 * node's own IP must never become an allowed IP: the tunnel's UDP would route into itself). */
function podHost(ip: string, entry: IpcacheEntry): string | undefined {
  if (!entry.hostIp || entry.hostIp === ip || entry.identity < MIN_LOCAL_IDENTITY) return undefined;
  return ipaddr.IPv4.isValidFourPartDecimal(ip) ? entry.hostIp : undefined;
}
