// The one writer of a mesh etcd: desired values per key go in, batched transactions come out.
// It knows what etcd holds (listed at start, then what it committed), so a value equal to the
// stored one is never written again: a restarted server rewrites nothing unchanged. Updates of
// one key merge while waiting; a key is never in two transactions at once (no reordering); a
// failed transaction is retried after a back-off; writes are bounded by a token bucket.
import { Backoff, unrefTimeout } from '../../agent/k8s/backoff.ts';
import type { KvOp, MeshKv, MeshWriterOptions, MeshWriterStats } from './types.ts';

interface Barrier {
  keys: Set<string>;
  resolve: () => void;
}

export class MeshWriter {
  /** What etcd holds, for every key under a loaded prefix or written by us. */
  private readonly stored = new Map<string, string>();
  private readonly pending = new Map<string, string | null>();
  private readonly inflight = new Set<string>();
  private barriers: Barrier[] = [];
  private txnsInFlight = 0;
  private tokens: number;
  private refilledAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly retry: Backoff;
  private stopped = false;
  readonly stats: MeshWriterStats = { txns: 0, puts: 0, deletes: 0, failedTxns: 0, unchanged: 0 };
  private readonly maxOps: number;
  private readonly rate: number;
  private readonly maxTxns: number;

  constructor(
    private readonly kv: MeshKv,
    private readonly opts: MeshWriterOptions = {},
  ) {
    this.maxOps = opts.maxOpsPerTxn ?? 128;
    this.rate = opts.maxOpsPerSecond ?? 20_000;
    this.maxTxns = opts.maxTxnsInFlight ?? 4;
    this.tokens = this.burst;
    this.retry = new Backoff({ baseMs: opts.retryBaseMs ?? 100, maxMs: opts.retryMaxMs ?? 5000 });
  }

  private get burst(): number {
    return Math.max(this.maxOps, this.rate);
  }

  /** (Re)reads what etcd holds under `prefix`, e.g. to repair drift; returns the keys found. */
  async load(prefix: string): Promise<Set<string>> {
    const found = await this.kv.list(prefix);
    // Keys being written keep what this writer knows; the listing may predate their commit.
    const busy = (key: string) => this.pending.has(key) || this.inflight.has(key);
    for (const key of [...this.stored.keys()]) {
      if (key.startsWith(prefix) && !found.has(key) && !busy(key)) this.stored.delete(key);
    }
    for (const [key, value] of found) if (!busy(key)) this.stored.set(key, value);
    return new Set(found.keys());
  }

  /** The value etcd holds for `key` as far as this writer knows. */
  storedValue(key: string): string | undefined {
    return this.stored.get(key);
  }

  /** Desired state of `key`: a value, or undefined for absent. Idempotent. */
  set(key: string, value: string | undefined): void {
    if (this.stopped) return;
    const want = value ?? null;
    if (!this.inflight.has(key) && this.matchesStored(key, want)) {
      if (this.pending.delete(key)) this.settled(key);
      else if (want !== null) this.stats.unchanged++;
      return;
    }
    this.pending.set(key, want);
    this.pump();
  }

  /** Resolves once every op queued or in flight now has been committed (or superseded). */
  barrier(): Promise<void> {
    const keys = new Set([...this.pending.keys(), ...this.inflight]);
    if (keys.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.barriers.push({ keys, resolve }));
  }

  /** Ops not yet committed. */
  get backlog(): number {
    return this.pending.size + this.inflight.size;
  }

  /** Drops what is queued; transactions in flight finish on their own. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.pending.clear();
    for (const b of this.barriers) b.resolve();
    this.barriers = [];
  }

  private matchesStored(key: string, want: string | null): boolean {
    return want === null ? !this.stored.has(key) : this.stored.get(key) === want;
  }

  private pump(): void {
    if (this.stopped || this.timer) return;
    this.refill();
    while (this.txnsInFlight < this.maxTxns && this.pending.size > 0) {
      const room = Math.min(this.maxOps, Math.floor(this.tokens));
      if (room < 1) {
        const waitMs = Math.ceil(((1 - this.tokens) / this.rate) * 1000);
        this.timer = unrefTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, waitMs);
        return;
      }
      const ops = this.take(room);
      if (ops.length === 0) return; // only keys in flight are waiting
      this.tokens -= ops.length;
      void this.commit(ops);
    }
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.rate);
    this.refilledAt = now;
  }

  private take(room: number): KvOp[] {
    const ops: KvOp[] = [];
    for (const [key, value] of this.pending) {
      if (ops.length >= room) break;
      if (this.inflight.has(key)) continue;
      this.pending.delete(key);
      if (this.matchesStored(key, value)) {
        this.settled(key);
        continue;
      }
      this.inflight.add(key);
      ops.push({ key, value });
    }
    return ops;
  }

  private async commit(ops: KvOp[]): Promise<void> {
    this.txnsInFlight++;
    let failed: unknown;
    try {
      await this.kv.commit(ops);
    } catch (err) {
      failed = err;
    }
    this.txnsInFlight--;
    for (const op of ops) this.inflight.delete(op.key);
    if (failed === undefined) this.committed(ops);
    else this.failed(ops, failed);
  }

  private committed(ops: KvOp[]): void {
    this.retry.reset();
    this.stats.txns++;
    for (const op of ops) {
      if (op.value === null) {
        this.stored.delete(op.key);
        this.stats.deletes++;
      } else {
        this.stored.set(op.key, op.value);
        this.stats.puts++;
      }
      if (!this.pending.has(op.key)) this.settled(op.key);
    }
    this.pump();
  }

  private failed(ops: KvOp[], err: unknown): void {
    this.stats.failedTxns++;
    // Newer desired values win over the failed ones; the rest go back to the queue.
    for (const op of ops) if (!this.pending.has(op.key)) this.pending.set(op.key, op.value);
    const delay = this.retry.next();
    this.opts.onLog?.('txn-failed', { ops: ops.length, retryInMs: delay, error: String(err) });
    if (this.stopped || this.timer) return;
    this.timer = unrefTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, delay);
  }

  private settled(key: string): void {
    if (this.barriers.length === 0) return;
    this.barriers = this.barriers.filter((b) => {
      b.keys.delete(key);
      if (b.keys.size > 0) return true;
      b.resolve();
      return false;
    });
  }
}
