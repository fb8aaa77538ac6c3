// Addresses in map keys: family byte + 16 bytes (IPv4 in the first 4, rest zero).
import ipaddr from 'ipaddr.js';
import { AF_INET, AF_INET6 } from './constants.ts';

export interface Prefix {
  family: number;
  /** 16 bytes, host bits zeroed */
  addr: Buffer;
  bits: number;
}

function datapathError(message: string): Error {
  return Object.assign(new Error(message), { code: 'EDATAPATH_ADDR' });
}

/** Parses 'a.b.c.d', 'a.b.c.d/n' or IPv6 forms into a canonical prefix. */
export function parsePrefix(text: string): Prefix {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = text.includes('/') ? ipaddr.parseCIDR(text) : [ipaddr.parse(text), -1];
  } catch (cause) {
    throw Object.assign(
      datapathError(`'${text}' is not an IP address or CIDR: give e.g. 10.0.0.1 or 10.0.0.0/8`),
      {
        cause,
      },
    );
  }
  const [ip, len] = parsed;
  const v4 = ip.kind() === 'ipv4';
  const bits = len < 0 ? (v4 ? 32 : 128) : len;
  const addr = Buffer.alloc(16);
  Buffer.from(ip.toByteArray()).copy(addr);
  maskBits(addr, bits);
  return { family: v4 ? AF_INET : AF_INET6, addr, bits };
}

function maskBits(addr: Buffer, bits: number): void {
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    addr[i] = (addr[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
}

/** Formats family + 16 bytes back to an address. */
export function formatAddr(family: number, addr: Buffer): string {
  const bytes = [...addr.subarray(0, family === AF_INET ? 4 : 16)];
  return ipaddr.fromByteArray(bytes).toString();
}

export function formatPrefix(family: number, addr: Buffer, bits: number): string {
  return `${formatAddr(family, addr)}/${bits}`;
}

export function addrBits(family: number): number {
  return family === AF_INET ? 32 : 128;
}
