// An in-memory MeshKv for unit tests of the sync logic: records every transaction, can hold
// commits until released and fail the next ones.
import type { KvOp, MeshKv } from './types.ts';

export class FakeMeshKv implements MeshKv {
  readonly data = new Map<string, string>();
  readonly txns: KvOp[][] = [];
  /** Times (ms) at which each transaction started. */
  readonly txnTimes: number[] = [];
  failNext = 0;
  private inFlight = 0;
  maxInFlight = 0;
  /** When set, commits wait for this promise (to observe in-flight behaviour). */
  gate: Promise<void> | undefined;

  async list(prefix: string): Promise<Map<string, string>> {
    return new Map([...this.data].filter(([k]) => k.startsWith(prefix)));
  }

  async commit(ops: readonly KvOp[]): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.txnTimes.push(Date.now());
    try {
      await (this.gate ?? Promise.resolve());
      if (this.failNext > 0) {
        this.failNext--;
        throw new Error('etcdserver: request timed out');
      }
      for (const keys = new Set<string>(); ;) {
        for (const op of ops) {
          if (keys.has(op.key)) throw new Error(`duplicate key ${op.key} in one txn`);
          keys.add(op.key);
        }
        break;
      }
      this.txns.push([...ops]);
      for (const op of ops) {
        if (op.value === null) this.data.delete(op.key);
        else this.data.set(op.key, op.value);
      }
    } finally {
      this.inFlight--;
    }
  }
}
