// One mirrored state prefix (identities, ipcache, nodes or services) of the local cluster.
// At start it learns which keys etcd already holds there (the previous instance's, also one that
// crashed); after the source's initial sync it deletes those no longer desired and only then
// writes the prefix's synced canary, so remote readers never sweep on a half-done listing.
//
// No leases: state keys outlive this process on purpose. Cilium hangs them on a session lease;
// here a crashed server would then make every remote cluster drop this cluster's endpoints after
// the TTL, the outage the mesh is meant to ride out. Ownership is the cluster's own mesh etcd
// (one writer user) plus the cluster config and synced canaries; the next instance cleans up.
import { encodeSyncedTime, syncedKey } from '../kvstore/index.ts';
import type { MeshWriter } from './mesh-writer.ts';

export class PrefixMirror {
  private found = new Set<string>();
  private readonly desired = new Map<string, string>();
  private syncedAt: Date | undefined;

  constructor(
    private readonly writer: MeshWriter,
    private readonly cluster: string,
    /** The state prefix named in the canary, e.g. NODES_PREFIX. */
    readonly statePrefix: string,
    /** Where this cluster's keys of the prefix live, with a trailing '/'. */
    readonly scanPrefix: string,
  ) {}

  /** Reads the keys etcd holds under the prefix; call before the source starts. */
  async load(): Promise<void> {
    this.found = await this.writer.load(this.scanPrefix);
  }

  put(key: string, value: string): void {
    this.desired.set(key, value);
    this.writer.set(key, value);
  }

  remove(key: string): void {
    this.desired.delete(key);
    this.writer.set(key, undefined);
  }

  get isSynced(): boolean {
    return this.syncedAt !== undefined;
  }

  get size(): number {
    return this.desired.size;
  }

  /**
   * The periodic full pass: re-reads the prefix and rewrites what differs from the desired state
   * (a key deleted or changed behind our back), deleting what is not desired. Returns the repairs.
   */
  async resync(): Promise<number> {
    if (!this.isSynced) return 0;
    const found = await this.writer.load(this.scanPrefix);
    const before = this.writer.backlog;
    for (const [key, value] of this.desired) this.writer.set(key, value);
    for (const key of found) if (!this.desired.has(key)) this.writer.set(key, undefined);
    const repairs = this.writer.backlog - before;
    await this.writer.barrier();
    return repairs;
  }

  /** The source listed everything: prune leftovers, wait until written, then the canary. */
  async markSynced(): Promise<number> {
    let stale = 0;
    for (const key of this.found) {
      if (this.desired.has(key)) continue;
      this.writer.set(key, undefined);
      stale++;
    }
    this.found.clear();
    await this.writer.barrier();
    const at = new Date();
    this.writer.set(syncedKey(this.cluster, this.statePrefix), encodeSyncedTime(at));
    await this.writer.barrier();
    this.syncedAt = at;
    return stale;
  }
}
