// Cluster-wide identity allocation through CiliumIdentity objects in the Kubernetes API.
// Every agent: look for an identity with our labels (label-hash selector, fresh read); else pick
// the lowest id it believes free and create it with that name. AlreadyExists means another agent
// took the id first: if it holds our labels we share it, otherwise we try the next id. After a
// create we look again: if an older identity for the same labels exists (two agents created
// different ids at once) ours loses, is deleted, and we use the older one.
import type { KubeApi } from '../k8s/types.ts';
import { isK8sError } from '../k8s/types.ts';
import { CiliumIdentities, type CiliumIdentity } from '../k8s/resources.ts';
import type { Resource } from '../k8s/resource.ts';
import { labelsToString } from './labels.ts';
import {
  LABELS_HASH_LABEL,
  identityId,
  identityLabels,
  identityObject,
  labelsHash,
  oldestFirst,
  sameLabels,
} from './k8s-identity-object.ts';
import {
  IdentityError,
  MAX_CLUSTER_ID,
  MAX_LOCAL_IDENTITY,
  MIN_LOCAL_IDENTITY,
  clusterOf,
  makeIdentity,
  type IdentityAllocator,
  type IdentityRecord,
  type SecurityLabels,
} from './types.ts';

export interface K8sIdentityAllocatorOptions {
  api: KubeApi;
  clusterId: number;
  /** A started watch of CiliumIdentities: its ids are skipped when picking a free one. */
  identities?: Resource<CiliumIdentity>;
  minLocal?: number;
  maxLocal?: number;
  /** Create attempts per allocation before giving up (each conflict costs one). */
  maxAttempts?: number;
  /** A held identity was deleted and could not be restored under its id: allocate again. */
  onLost?: (labels: SecurityLabels, formerId: number) => void;
}

export interface AllocatorStats {
  /** Identities this allocator created and kept. */
  created: number;
  /** Existing identities found for the labels. */
  reused: number;
  /** Creates answered 409 AlreadyExists (another agent had the id). */
  conflicts: number;
  /** Our create lost to an older identity with the same labels and was deleted. */
  duplicatesResolved: number;
  /** Held identities re-created after their object was deleted. */
  restored: number;
}

interface Hold {
  record: IdentityRecord;
  refs: number;
}

export class K8sIdentityAllocator implements IdentityAllocator {
  readonly clusterId: number;
  readonly stats: AllocatorStats = {
    created: 0,
    reused: 0,
    conflicts: 0,
    duplicatesResolved: 0,
    restored: 0,
  };
  private readonly holds = new Map<string, Hold>();
  /** The same holds by id -> label key. */
  private readonly heldKeys = new Map<number, string>();
  private readonly inflight = new Map<string, Promise<IdentityRecord>>();
  /** Ids found taken by conflicts, which the watch may not show yet. */
  private readonly taken = new Set<number>();
  private readonly minLocal: number;
  private readonly maxLocal: number;

  constructor(private readonly opts: K8sIdentityAllocatorOptions) {
    const c = opts.clusterId;
    if (!Number.isInteger(c) || c < 1 || c > MAX_CLUSTER_ID) {
      throw new IdentityError(
        'IDENTITY_BAD_CLUSTER',
        `cluster ID ${c} is out of range: use an integer from 1 to ${MAX_CLUSTER_ID}`,
      );
    }
    this.clusterId = c;
    this.minLocal = opts.minLocal ?? MIN_LOCAL_IDENTITY;
    this.maxLocal = opts.maxLocal ?? MAX_LOCAL_IDENTITY;
    // An id learnt from a conflict stays taken until the watch reports it deleted.
    opts.identities?.onChange((ch) => {
      const id = identityId(ch.object);
      if (ch.type !== 'delete' || id === undefined) return;
      this.taken.delete(id);
      if (this.heldIds().has(id)) void this.restoreHeld().catch(() => undefined);
    });
  }

  /**
   * Re-creates held identities whose objects vanished (a GC that raced with our allocation), as
   * Cilium's allocator re-creates master keys of local references. Returns the label sets that
   * could not keep their id (the id was taken meanwhile, or an older identity for the labels
   * appeared): their holders must allocate again; `onLost` hears of them too.
   */
  async restoreHeld(): Promise<SecurityLabels[]> {
    const lost: SecurityLabels[] = [];
    // A fresh list, not the watch: this runs exactly when the watch may be behind.
    const current = new Map(
      (await this.opts.api.list(CiliumIdentities)).items.map((o) => [o.metadata.name, o]),
    );
    for (const [key, hold] of [...this.holds]) {
      const { id, labels } = hold.record;
      const obj = current.get(String(id));
      if (obj && sameLabels(obj, labels)) continue;
      if (!obj) {
        try {
          await this.opts.api.create(CiliumIdentities, identityObject(id, labels));
          this.stats.restored++;
        } catch (err) {
          if (!isK8sError(err, 'K8S_ALREADY_EXISTS')) throw err;
        }
      }
      const winner = await this.findOldest(labelsHash(labels), labels);
      if (winner?.id === id) continue;
      this.dropHold(key);
      lost.push(labels);
      this.opts.onLost?.(labels, id);
    }
    return lost;
  }

  /** Cluster-wide allocation; takes one local reference. The agent awaits this per endpoint. */
  async allocateAsync(labels: SecurityLabels): Promise<IdentityRecord> {
    const key = labelsToString(labels);
    for (;;) {
      const held = this.holds.get(key);
      if (held) {
        held.refs++;
        return held.record;
      }
      const pending = this.inflight.get(key);
      if (!pending) break;
      await pending.catch(() => undefined);
      if (!this.holds.has(key)) return this.allocateAsync(labels); // it failed: our own try
    }
    const p = this.resolve(labels);
    this.inflight.set(key, p);
    try {
      const record = await p;
      this.addHold(key, record);
      return record;
    } finally {
      this.inflight.delete(key);
    }
  }

  /**
   * IdentityAllocator's synchronous form: serves label sets already known cluster-wide (held
   * here, or in the identities watch); anything else needs `allocateAsync` first.
   */
  allocate(labels: SecurityLabels): IdentityRecord {
    const key = labelsToString(labels);
    const held = this.holds.get(key);
    if (held) {
      held.refs++;
      return held.record;
    }
    const known = this.opts.identities
      ?.list()
      .filter((o) => sameLabels(o, labels) && identityId(o) !== undefined)
      .sort(oldestFirst)[0];
    if (!known) {
      throw new IdentityError(
        'IDENTITY_UNKNOWN',
        `no cluster-wide identity exists yet for ${key}: await allocateAsync(labels) first`,
      );
    }
    const record = { id: identityId(known)!, labels: new Map(labels) };
    this.addHold(key, record);
    return record;
  }

  release(id: number): boolean {
    const key = this.heldKeys.get(id);
    const hold = key === undefined ? undefined : this.holds.get(key);
    if (!hold || key === undefined) return false;
    if (--hold.refs > 0) return false;
    this.dropHold(key); // the object stays; the GC removes it once nothing references it
    return true;
  }

  lookup(id: number): IdentityRecord | undefined {
    const key = this.heldKeys.get(id);
    if (key !== undefined) return this.holds.get(key)?.record;
    const obj = this.opts.identities?.get(String(id));
    return obj ? { id, labels: identityLabels(obj) } : undefined;
  }

  /** Ids held by local references (the GC of this agent never collects them). */
  heldIds(): Set<number> {
    return new Set(this.heldKeys.keys());
  }

  private addHold(key: string, record: IdentityRecord): void {
    this.holds.set(key, { record, refs: 1 });
    this.heldKeys.set(record.id, key);
  }

  private dropHold(key: string): void {
    const hold = this.holds.get(key);
    this.holds.delete(key);
    if (hold) this.heldKeys.delete(hold.record.id);
  }

  private async resolve(labels: SecurityLabels): Promise<IdentityRecord> {
    const hash = labelsHash(labels);
    const attempts = this.opts.maxAttempts ?? 64;
    for (let i = 0; i < attempts; i++) {
      const existing = await this.findOldest(hash, labels);
      if (existing) {
        this.stats.reused++;
        return existing;
      }
      const id = await this.pickFree();
      let created: CiliumIdentity;
      try {
        created = await this.opts.api.create(CiliumIdentities, identityObject(id, labels));
      } catch (err) {
        if (!isK8sError(err, 'K8S_ALREADY_EXISTS')) throw err;
        this.stats.conflicts++;
        this.taken.add(id); // holds other labels, or ours (then found by the next lookup)
        continue;
      }
      const winner = await this.findOldest(hash, labels);
      if (winner && winner.id !== id) {
        this.stats.duplicatesResolved++;
        await this.deleteOwn(created);
        return winner;
      }
      this.stats.created++;
      return { id, labels: new Map(labels) };
    }
    throw new IdentityError(
      'IDENTITY_EXHAUSTED',
      `no identity could be allocated for ${labelsToString(labels)} after ${attempts} conflicting attempts: ` +
        'the cluster is out of identities or under heavy contention; remove unused label sets and retry',
    );
  }

  /** The winning identity for these labels, read fresh from the API server. */
  private async findOldest(
    hash: string,
    labels: SecurityLabels,
  ): Promise<IdentityRecord | undefined> {
    const { items } = await this.opts.api.list(CiliumIdentities, {
      labelSelector: `${LABELS_HASH_LABEL}=${hash}`,
    });
    const winner = items
      .filter((o) => sameLabels(o, labels) && this.ours(identityId(o)))
      .sort(oldestFirst)[0];
    return winner ? { id: identityId(winner)!, labels: new Map(labels) } : undefined;
  }

  private ours(id: number | undefined): boolean {
    return id !== undefined && clusterOf(id) === this.clusterId;
  }

  private async pickFree(): Promise<number> {
    // Without a watch every pick lists afresh, which already shows every conflicting id.
    if (this.opts.identities) await this.opts.identities.synced; // an empty cache only costs conflicts
    const used = new Set(this.opts.identities ? this.taken : []);
    const objects = this.opts.identities
      ? this.opts.identities.list()
      : (await this.opts.api.list(CiliumIdentities)).items;
    for (const o of objects) {
      const id = identityId(o);
      if (id !== undefined) used.add(id);
    }
    for (let local = this.minLocal; local <= this.maxLocal; local++) {
      const id = makeIdentity(this.clusterId, local);
      if (!used.has(id)) return id;
    }
    throw new IdentityError(
      'IDENTITY_EXHAUSTED',
      `cluster ${this.clusterId} has no free identity left (${this.maxLocal - this.minLocal + 1} in use): ` +
        'remove unused label sets (e.g. pods with unique labels) or wait for the identity GC',
    );
  }

  private async deleteOwn(obj: CiliumIdentity): Promise<void> {
    try {
      await this.opts.api.delete(CiliumIdentities, obj.metadata.name, undefined, {
        ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
      });
    } catch (err) {
      if (!isK8sError(err, 'K8S_NOT_FOUND') && !isK8sError(err, 'K8S_CONFLICT')) throw err;
    }
  }
}
