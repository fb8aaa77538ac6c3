// Port and CIDR primitives: protocol names, port validation, disjoint interval sets and their
// decomposition into (port, prefix length) pairs for the datapath's LPM key.
import ipaddr from 'ipaddr.js';
import { Protocol, type ProtocolNumber } from './entry.ts';
import type { FieldError } from './types.ts';

export const CONCRETE_PROTOCOLS = [Protocol.TCP, Protocol.UDP, Protocol.SCTP] as const;

export const PROTOCOL_NAMES: Record<string, ProtocolNumber> = {
  TCP: Protocol.TCP,
  UDP: Protocol.UDP,
  SCTP: Protocol.SCTP,
  ANY: Protocol.ANY,
};

export function protocolName(p: number): string {
  return Object.entries(PROTOCOL_NAMES).find(([, n]) => n === p)?.[0] ?? String(p);
}

const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** IANA_SVC_NAME, as Kubernetes validates named ports. */
export function validPortName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= 15 &&
    IANA_SVC_NAME.test(name) &&
    /[a-z]/.test(name) &&
    !name.includes('--')
  );
}

export function validPortNumber(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** Inclusive port interval. */
export interface Interval {
  lo: number;
  hi: number;
}

/** Sorted, merged, disjoint union of the intervals. */
export function normalize(list: readonly Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => a.lo - b.lo);
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.lo <= last.hi + 1) last.hi = Math.max(last.hi, iv.hi);
    else out.push({ lo: iv.lo, hi: iv.hi });
  }
  return out;
}

/** a minus b, both normalized. */
export function subtract(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const iv of a) {
    let lo = iv.lo;
    for (const cut of b) {
      if (cut.hi < lo || cut.lo > iv.hi) continue;
      if (cut.lo > lo) out.push({ lo, hi: cut.lo - 1 });
      lo = cut.hi + 1;
      if (lo > iv.hi) break;
    }
    if (lo <= iv.hi) out.push({ lo, hi: iv.hi });
  }
  return out;
}

/** The minimal list of 16-bit (port, prefixLen) blocks covering an interval exactly. */
export function toPortPrefixes(iv: Interval): { port: number; prefixLen: number }[] {
  const out: { port: number; prefixLen: number }[] = [];
  let lo = iv.lo;
  while (lo <= iv.hi) {
    let size = lo === 0 ? 1 << 16 : lo & -lo; // largest block aligned at lo
    while (lo + size - 1 > iv.hi) size >>= 1;
    out.push({ port: lo, prefixLen: 16 - Math.log2(size) });
    lo += size;
  }
  return out;
}

export function portInPrefix(port: number, base: number, prefixLen: number): boolean {
  if (prefixLen === 0) return true;
  const shift = 16 - prefixLen;
  return port >>> shift === base >>> shift;
}

/** Canonical CIDR or undefined when not a valid one. Host bits must be zero? No: normalized. */
export function parseCidr(
  text: unknown,
): { cidr: string; addr: ipaddr.IPv4 | ipaddr.IPv6; bits: number } | undefined {
  if (typeof text !== 'string') return undefined;
  try {
    const [addr, bits] = ipaddr.parseCIDR(text);
    const net =
      addr.kind() === 'ipv4'
        ? ipaddr.IPv4.networkAddressFromCIDR(text)
        : ipaddr.IPv6.networkAddressFromCIDR(text);
    return { cidr: `${net.toString()}/${bits}`, addr: net, bits };
  } catch {
    return undefined;
  }
}

export function cidrContains(outer: string, inner: string): boolean {
  const a = ipaddr.parseCIDR(outer);
  const b = ipaddr.parseCIDR(inner);
  if (a[0].kind() !== b[0].kind() || b[1] < a[1]) return false;
  return b[0].match(a);
}

export function addressInCidr(ip: string, cidr: string): boolean {
  const addr = ipaddr.parse(ip);
  const range = ipaddr.parseCIDR(cidr);
  return addr.kind() === range[0].kind() && addr.match(range);
}

/** Validation helper shared by both policy dialects. */
export function pushPortError(
  errors: FieldError[],
  field: string,
  value: unknown,
  detail: string,
): void {
  errors.push({ field, type: 'Invalid value', value, detail });
}
