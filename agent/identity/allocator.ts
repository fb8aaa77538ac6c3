// Deterministic in-memory identity allocator: the lowest free local number wins, so the same
// sequence of allocations always yields the same identities. The agent's cluster-wide
// allocator (kvstore-backed) implements the same interface.
import { labelsToString } from './labels.ts';
import {
  IdentityError,
  MAX_CLUSTER_ID,
  MAX_LOCAL_IDENTITY,
  MIN_LOCAL_IDENTITY,
  makeIdentity,
  type IdentityAllocator,
  type IdentityRecord,
  type SecurityLabels,
} from './types.ts';

interface Slot {
  record: IdentityRecord;
  key: string;
  refs: number;
}

export class InMemoryIdentityAllocator implements IdentityAllocator {
  private readonly byKey = new Map<string, Slot>();
  private readonly byId = new Map<number, Slot>();
  private nextLocal = MIN_LOCAL_IDENTITY;
  private readonly freed: number[] = [];

  constructor(
    readonly clusterId: number,
    private readonly maxLocal = MAX_LOCAL_IDENTITY,
  ) {
    if (!Number.isInteger(clusterId) || clusterId < 1 || clusterId > MAX_CLUSTER_ID) {
      throw new IdentityError(
        'IDENTITY_BAD_CLUSTER',
        `cluster ID ${clusterId} is out of range: use an integer from 1 to ${MAX_CLUSTER_ID}`,
      );
    }
  }

  allocate(labels: SecurityLabels): IdentityRecord {
    const key = labelsToString(labels);
    const existing = this.byKey.get(key);
    if (existing) {
      existing.refs++;
      return existing.record;
    }
    const local = this.takeLocal();
    const record = { id: makeIdentity(this.clusterId, local), labels: new Map(labels) };
    const slot = { record, key, refs: 1 };
    this.byKey.set(key, slot);
    this.byId.set(record.id, slot);
    return record;
  }

  release(id: number): boolean {
    const slot = this.byId.get(id);
    if (!slot) return false;
    if (--slot.refs > 0) return false;
    this.byId.delete(id);
    this.byKey.delete(slot.key);
    this.freed.push(id & 0xffff);
    this.freed.sort((a, b) => b - a); // pop() yields the lowest: deterministic reuse
    return true;
  }

  lookup(id: number): IdentityRecord | undefined {
    return this.byId.get(id)?.record;
  }

  get size(): number {
    return this.byId.size;
  }

  private takeLocal(): number {
    const reused = this.freed.pop();
    if (reused !== undefined) return reused;
    if (this.nextLocal > this.maxLocal) {
      throw new IdentityError(
        'IDENTITY_EXHAUSTED',
        `cluster ${this.clusterId} has no free identity left (${this.maxLocal - MIN_LOCAL_IDENTITY + 1} in use): ` +
          'remove unused label sets (e.g. pods with unique labels) or release identities',
      );
    }
    return this.nextLocal++;
  }
}
