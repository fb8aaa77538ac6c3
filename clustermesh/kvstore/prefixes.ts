// Address math for validation. IPv4-mapped IPv6 addresses are folded to IPv4 first, so a remote
// cannot dodge an overlap check by spelling 10.1.0.5 as ::ffff:10.1.0.5.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Addr = ipaddr.IPv4 | ipaddr.IPv6;

export interface Prefix {
  addr: Addr;
  len: number;
}

/** Strict textual IP: dotted-quad IPv4 or IPv6, no zone (ipaddr.js alone accepts `10.1`, hex...). */
export function isIpAddress(ip: string): boolean {
  return isIP(ip) !== 0 && !ip.includes('%');
}

export function parseAddr(ip: string): Addr | null {
  return isIpAddress(ip) ? ipaddr.process(ip) : null;
}

/** `a.b.c.d/n`, or a bare IP as a host prefix; null if unparsable. */
export function parsePrefix(text: string): Prefix | null {
  const slash = text.indexOf('/');
  if (slash < 0) {
    const addr = parseAddr(text);
    return addr ? { addr, len: addr.kind() === 'ipv4' ? 32 : 128 } : null;
  }
  const addr = parseAddr(text.slice(0, slash));
  const len = Number(text.slice(slash + 1));
  if (!addr || !/^\d{1,3}$/.test(text.slice(slash + 1))) return null;
  const mapped = ipaddr.parse(text.slice(0, slash)).kind() === 'ipv6' && addr.kind() === 'ipv4';
  const bits = mapped ? len - 96 : len;
  if (bits < 0 || bits > (addr.kind() === 'ipv4' ? 32 : 128)) return null;
  return { addr, len: bits };
}

export function prefixContains(p: Prefix, addr: Addr): boolean {
  if (p.addr.kind() !== addr.kind()) return false;
  return (addr as ipaddr.IPv4).match(p.addr as ipaddr.IPv4, p.len);
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  return prefixContains(a, b.addr) || prefixContains(b, a.addr);
}

export function sameAddr(a: Addr, b: Addr): boolean {
  return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}
