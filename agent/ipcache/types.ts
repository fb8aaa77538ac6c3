// The ipcache: peer address (prefix) -> security identity, as every node's datapath looks it up
// (agent/policy/entry.ts step 2). Imports nothing from siblings.

/** Where a desired row comes from: node addresses, this node's endpoints (known before their
 * objects come back through the watch), endpoint objects; a prefix goes to the first source. */
export const IPCACHE_SOURCES = ['node', 'local', 'endpoint', 'remote'] as const;
export type IpcacheSource = (typeof IPCACHE_SOURCES)[number];

/** One desired row of the ipcache. */
export interface IpcacheEntry {
  /** canonical prefix, e.g. `10.1.2.7/32` */
  cidr: string;
  identity: number;
  /** node hosting the address (pods), if any */
  hostIp?: string;
}

/** What the reconciler writes to: the kernel map or an in-memory fake with the same surface. */
export interface IpcacheTarget {
  get(cidr: string): { identity: number; hostIp?: string; encrypt: boolean } | undefined;
  set(cidr: string, value: { identity: number; hostIp?: string; encrypt: boolean }): void;
  delete(cidr: string): boolean;
  entries(): Iterable<[string, { identity: number; hostIp?: string; encrypt: boolean }]>;
}

/** Normalises a bare address to its full-length prefix. */
export function hostPrefix(ip: string): string {
  if (ip.includes('/')) return ip;
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}
