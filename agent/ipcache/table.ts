// Desired ipcache rows, by source: endpoint objects of the cluster and the node table. A prefix
// claimed by several sources resolves by source precedence (nodes first: a node address is never
// taken over by a stale endpoint object). Listeners hear every change of the resolved row.
import { IPCACHE_SOURCES, hostPrefix, type IpcacheEntry, type IpcacheSource } from './types.ts';

export type IpcacheTableListener = (cidr: string, entry: IpcacheEntry | undefined) => void;

export class IpcacheTable {
  private readonly bySource = new Map<IpcacheSource, Map<string, IpcacheEntry>>(
    IPCACHE_SOURCES.map((s) => [s, new Map()]),
  );
  private readonly listeners = new Set<IpcacheTableListener>();

  onChange(listener: IpcacheTableListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  upsert(source: IpcacheSource, entry: IpcacheEntry): void {
    const cidr = hostPrefix(entry.cidr);
    const before = this.get(cidr);
    this.bySource.get(source)!.set(cidr, { ...entry, cidr });
    this.notify(cidr, before);
  }

  delete(source: IpcacheSource, cidr: string): void {
    const key = hostPrefix(cidr);
    const before = this.get(key);
    if (this.bySource.get(source)!.delete(key)) this.notify(key, before);
  }

  /** Replaces every row of one source (e.g. the node table after a change). */
  replaceSource(source: IpcacheSource, entries: readonly IpcacheEntry[]): void {
    const next = new Map(entries.map((e) => [hostPrefix(e.cidr), e]));
    for (const cidr of [...this.bySource.get(source)!.keys()])
      if (!next.has(cidr)) this.delete(source, cidr);
    for (const e of next.values()) this.upsert(source, e);
  }

  get(cidr: string): IpcacheEntry | undefined {
    const key = hostPrefix(cidr);
    for (const s of IPCACHE_SOURCES) {
      const e = this.bySource.get(s)!.get(key);
      if (e) return e;
    }
    return undefined;
  }

  /** The resolved desired rows. */
  all(): Map<string, IpcacheEntry> {
    const out = new Map<string, IpcacheEntry>();
    for (const s of [...IPCACHE_SOURCES].reverse())
      for (const [cidr, e] of this.bySource.get(s)!) out.set(cidr, e);
    return out;
  }

  private notify(cidr: string, before: IpcacheEntry | undefined): void {
    const after = this.get(cidr);
    if (sameEntry(before, after)) return;
    for (const l of this.listeners) l(cidr, after);
  }
}

export function sameEntry(a: IpcacheEntry | undefined, b: IpcacheEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.cidr === b.cidr && a.identity === b.identity && (a.hostIp ?? '') === (b.hostIp ?? '');
}
