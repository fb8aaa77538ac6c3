// Writes the desired ipcache (IpcacheTable) into the datapath's ipcache map: update/delete per
// row as the table changes, and a full pass (prune) that reads the map back, removes rows nobody
// wants and repairs changed ones. The map holds only what this reconciler owns.
import type { IpcacheTable } from './table.ts';
import type { IpcacheEntry, IpcacheTarget } from './types.ts';

export interface IpcacheReconcilerOptions {
  /** period of the full pass; 0 disables it */
  intervalMs?: number;
  onError?: (err: unknown) => void;
  /** rows repaired by a full pass (drift), for logs */
  onRepair?: (cidr: string, what: 'added' | 'changed' | 'removed') => void;
}

export class IpcacheReconciler {
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly table: IpcacheTable,
    private readonly target: IpcacheTarget,
    private readonly opts: IpcacheReconcilerOptions = {},
  ) {}

  start(): void {
    this.unsubscribe = this.table.onChange((cidr, entry) =>
      this.guard(() => this.sync(cidr, entry)),
    );
    this.guard(() => this.prune(false)); // the first pass writes the table: not drift
    const interval = this.opts.intervalMs ?? 10_000;
    if (interval > 0) {
      this.timer = setInterval(() => this.guard(() => this.prune()), interval);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Full pass: the map ends up holding exactly the desired rows. Returns the repairs made. */
  prune(reportRepairs = true): number {
    const desired = this.table.all();
    let repairs = 0;
    for (const [cidr] of [...this.target.entries()]) {
      if (desired.has(cidr)) continue;
      this.target.delete(cidr);
      if (reportRepairs) this.opts.onRepair?.(cidr, 'removed');
      repairs++;
    }
    for (const [cidr, e] of desired) {
      const cur = this.target.get(cidr);
      if (cur && matches(cur, e)) continue;
      this.write(e);
      if (reportRepairs) this.opts.onRepair?.(cidr, cur ? 'changed' : 'added');
      repairs++;
    }
    this.lastError = undefined;
    return repairs;
  }

  /** Whether the map, read back, holds exactly the desired rows; the first difference otherwise. */
  converged(): { ok: true; size: number } | { ok: false; size: number; difference: string } {
    const desired = this.table.all();
    let size = 0;
    for (const [cidr, v] of this.target.entries()) {
      size++;
      const e = desired.get(cidr);
      if (!e) return { ok: false, size, difference: `${cidr} is in the map but not desired` };
      if (!matches(v, e))
        return { ok: false, size, difference: `${cidr} maps to ${v.identity}, not ${e.identity}` };
    }
    if (size !== desired.size) {
      const missing = [...desired.keys()].find((c) => !this.target.get(c));
      return {
        ok: false,
        size,
        difference: `${missing ?? 'a desired row'} is missing from the map`,
      };
    }
    return { ok: true, size };
  }

  error(): string | undefined {
    return this.lastError;
  }

  private sync(cidr: string, entry: IpcacheEntry | undefined): void {
    if (entry) this.write(entry);
    else this.target.delete(cidr);
  }

  private write(e: IpcacheEntry): void {
    this.target.set(e.cidr, {
      identity: e.identity,
      ...(e.hostIp && { hostIp: e.hostIp }),
      encrypt: false,
    });
  }

  private guard(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.opts.onError?.(err);
    }
  }
}

function matches(v: { identity: number; hostIp?: string }, e: IpcacheEntry): boolean {
  return v.identity === e.identity && (v.hostIp ?? '') === (e.hostIp ?? '');
}
