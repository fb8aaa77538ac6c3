// A work queue of keys (as client-go's workqueue): events of one key merge while it waits, one
// key is never handled twice at once, a failed key is retried with per-key back-off and is never
// dropped, and "synced" fires once every key known at the initial list was handled once.
import { Backoff, unrefTimeout, type BackoffOptions } from './backoff.ts';

export type KeyHandler = (key: string) => Promise<void> | void;

export interface KeyQueueOptions {
  /** Keys handled at once (different keys only). */
  concurrency?: number;
  retry?: BackoffOptions;
  /** Called when a handler throws; the key stays queued for a retry. */
  onError?: (key: string, err: unknown, attempt: number) => void;
}

interface Retry {
  backoff: Backoff;
  timer?: NodeJS.Timeout;
}

export class KeyQueue {
  private readonly pending = new Set<string>();
  private readonly active = new Set<string>();
  /** Keys that changed while being handled: run again after. */
  private readonly dirty = new Set<string>();
  private readonly retries = new Map<string, Retry>();
  private syncWaiting: Set<string> | undefined;
  private syncedResolve!: () => void;
  private syncMarked = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  /** Resolves once every key enqueued before `markSynced()` was handled once. */
  readonly synced: Promise<void>;

  constructor(
    private readonly handler: KeyHandler,
    private readonly opts: KeyQueueOptions = {},
  ) {
    this.synced = new Promise((r) => (this.syncedResolve = r));
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    const retry = this.retries.get(key);
    if (retry?.timer) {
      // Fresh state may fix what failed: run now, keep the failure count.
      clearTimeout(retry.timer);
      retry.timer = undefined;
    }
    this.pending.add(key);
    this.pump();
  }

  /** The source finished its initial list: every key added so far must be handled once. */
  markSynced(): void {
    if (this.syncMarked) return;
    this.syncMarked = true;
    this.syncWaiting = new Set([...this.pending, ...this.active, ...this.dirty]);
    for (const [key, r] of this.retries) if (r.timer) this.syncWaiting.add(key);
    this.checkSynced();
  }

  get isSynced(): boolean {
    return this.syncMarked && this.syncWaiting === undefined;
  }

  /** Keys waiting, running or waiting for a retry. */
  get length(): number {
    const keys = new Set([...this.pending, ...this.active, ...this.dirty]);
    for (const [key, r] of this.retries) if (r.timer) keys.add(key);
    return keys.size;
  }

  /** Resolves when nothing is queued, running or waiting for a retry (tests, shutdown). */
  idle(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    this.retries.clear();
    this.pending.clear();
    this.dirty.clear();
  }

  private pump(): void {
    const limit = this.opts.concurrency ?? 1;
    while (!this.stopped && this.active.size < limit && this.pending.size > 0) {
      const key = this.pending.values().next().value as string;
      this.pending.delete(key);
      this.active.add(key);
      void this.run(key);
    }
    this.notifyIdle();
  }

  private async run(key: string): Promise<void> {
    let failed: unknown;
    let ok = true;
    try {
      await this.handler(key);
    } catch (err) {
      ok = false;
      failed = err;
    }
    this.active.delete(key);
    if (this.stopped) return;
    if (ok) this.retries.delete(key);
    else this.scheduleRetry(key, failed);
    if (this.dirty.delete(key)) this.add(key);
    this.handled(key);
    this.pump();
  }

  private scheduleRetry(key: string, err: unknown): void {
    let r = this.retries.get(key);
    if (!r) {
      r = { backoff: new Backoff(this.opts.retry ?? { baseMs: 50, maxMs: 30_000 }) };
      this.retries.set(key, r);
    }
    const delay = r.backoff.next();
    this.opts.onError?.(key, err, r.backoff.attempts);
    const retry = r;
    retry.timer = unrefTimeout(() => {
      retry.timer = undefined;
      this.add(key);
    }, delay);
  }

  private handled(key: string): void {
    if (!this.syncWaiting) return;
    this.syncWaiting.delete(key);
    this.checkSynced();
  }

  private checkSynced(): void {
    if (this.syncWaiting && this.syncWaiting.size === 0) {
      this.syncWaiting = undefined;
      this.syncedResolve();
    }
  }

  private notifyIdle(): void {
    // Checked first: `length` builds a set of every key, too costly on each pump of a big list.
    if (this.idleWaiters.length === 0 || this.length !== 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
