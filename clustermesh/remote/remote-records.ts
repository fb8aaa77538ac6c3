// The merge logic of one remote cluster: every record it sends is validated (the remote is
// untrusted), accepted ones are kept per key and handed to the sink, identical re-puts are no
// change, and after a relist only keys not seen again are swept — once the remote's synced canary
// says that kind's listing is complete. Knows nothing about etcd: it consumes listings and events.
import {
  clusterConfigKey,
  IDENTITY_ID_PREFIX,
  IDENTITIES_PREFIX,
  IPCACHE_PREFIX,
  NODES_PREFIX,
  SERVICES_PREFIX,
  syncedKey,
  RejectReason,
  validateRemoteRecord,
  type ClusterRef,
  type MeshTable,
  type Rejection,
  type RemoteRecord,
} from '../kvstore/index.ts';
import type { KeyValue, RemoteSink, StateKind, WatchEvent } from './types.ts';

/** Apply order: nodes first (ipcache entries must lie in known pod CIDRs), services last. */
export const STATE_KINDS: readonly StateKind[] = ['nodes', 'identities', 'ipcache', 'services'];
/** Removal order: dependants before what they depend on. */
const SWEEP_ORDER: readonly StateKind[] = ['ipcache', 'services', 'identities', 'nodes'];

/** The kvstore prefix of each kind whose synced canary gates sweeping (DESIGN.md key table). */
const CANARY_PREFIX: Record<StateKind, string> = {
  nodes: NODES_PREFIX,
  identities: IDENTITIES_PREFIX,
  ipcache: IPCACHE_PREFIX,
  services: SERVICES_PREFIX,
};

/** The key prefixes read from the remote `cluster`, per kind. */
export function statePrefixes(cluster: string): Record<StateKind, string> {
  return {
    nodes: `${NODES_PREFIX}/${cluster}/`,
    identities: `${IDENTITY_ID_PREFIX}/`,
    ipcache: `${IPCACHE_PREFIX}/`,
    services: `${SERVICES_PREFIX}/${cluster}/`,
  };
}

/** Every prefix a reader of `cluster` lists and watches: config, canaries, the four kinds. */
export function watchedPrefixes(cluster: string): string[] {
  const kinds = statePrefixes(cluster);
  return [
    clusterConfigKey(cluster),
    `cilium/synced/${cluster}/`,
    ...STATE_KINDS.map((k) => kinds[k]),
  ];
}

/**
 * Rejections an ipcache entry can outgrow: a writer may publish a pod before its node, so such
 * entries are held (bounded) and checked again when a node of the remote arrives or changes.
 */
const WAITS_FOR_NODE = new Set<Rejection['reason']>([
  RejectReason.IpOutsidePodCidrs,
  RejectReason.HostIpUnknown,
]);
const MAX_PARKED = 10_000;

interface Entry {
  raw: string;
  record: RemoteRecord;
}

export interface RemoteRecordsHooks {
  /** a record failed validation: log it and count it (RemoteRecordFilter.report does both) */
  onReject(key: string, rejection: Rejection): void;
  /** the cluster-config key changed while connected */
  onConfig(value: string | undefined): void;
  /** something was applied through the sink */
  onApplied(): void;
}

export class RemoteRecords {
  private readonly entries: Record<StateKind, Map<string, Entry>> = {
    nodes: new Map(),
    identities: new Map(),
    ipcache: new Map(),
    services: new Map(),
  };
  /** kinds relisted but not yet swept: the keys seen since the relist */
  private readonly seen = new Map<StateKind, Set<string>>();
  private readonly synced = new Set<StateKind>();
  /** ipcache entries refused only because their node is not known yet (key → raw value) */
  private readonly parked = new Map<string, string>();
  private readonly prefixes: Record<StateKind, string>;
  private readonly canaryKeys: Map<string, StateKind>;
  private readonly configKey: string;

  constructor(
    private readonly remote: ClusterRef,
    private readonly mesh: MeshTable,
    private readonly sink: RemoteSink,
    private readonly hooks: RemoteRecordsHooks,
  ) {
    this.prefixes = statePrefixes(remote.name);
    this.canaryKeys = new Map(
      STATE_KINDS.map((k) => [syncedKey(remote.name, CANARY_PREFIX[k]), k]),
    );
    this.configKey = clusterConfigKey(remote.name);
  }

  counts(): Record<StateKind, number> {
    return {
      nodes: this.entries.nodes.size,
      identities: this.entries.identities.size,
      ipcache: this.entries.ipcache.size,
      services: this.entries.services.size,
    };
  }

  isSynced(kind: StateKind): boolean {
    return this.synced.has(kind);
  }

  /**
   * Applies a complete listing (after a connect or reconnect). Kinds whose canary is in the
   * listing are swept now — before their puts, so a record that replaced a removed one (a new
   * node taking a deleted node's pod CIDR) does not clash with it; the others once their canary
   * arrives through the watch.
   */
  applyListing(entries: readonly KeyValue[]): void {
    this.synced.clear();
    this.seen.clear();
    this.parked.clear();
    const byKind = new Map<StateKind, KeyValue[]>(STATE_KINDS.map((k) => [k, []]));
    const canaries = new Set<StateKind>();
    for (const e of entries) {
      const kind = this.kindOf(e.key);
      if (kind === 'canary') canaries.add(this.canaryKeys.get(e.key)!);
      else if (kind !== undefined && kind !== 'config') byKind.get(kind)!.push(e);
    }
    for (const kind of SWEEP_ORDER) {
      if (!canaries.has(kind)) continue;
      const listed = new Set(byKind.get(kind)!.map((e) => e.key));
      this.sweep(kind, listed);
    }
    for (const kind of STATE_KINDS) {
      const seen = new Set<string>();
      for (const e of byKind.get(kind)!) {
        seen.add(e.key);
        this.upsert(kind, e.key, e.value);
      }
      if (canaries.has(kind)) this.synced.add(kind);
      else this.seen.set(kind, seen);
    }
  }

  /** Applies watch events in order. */
  applyEvents(events: readonly WatchEvent[]): void {
    for (const ev of events) {
      const kind = this.kindOf(ev.key);
      if (kind === undefined) continue;
      if (kind === 'config') this.hooks.onConfig(ev.type === 'put' ? ev.value : undefined);
      else if (kind === 'canary') this.onCanary(this.canaryKeys.get(ev.key)!, ev.type === 'put');
      else if (ev.type === 'put') {
        this.seen.get(kind)?.add(ev.key);
        this.upsert(kind, ev.key, ev.value);
      } else {
        this.parked.delete(ev.key);
        this.remove(kind, ev.key);
      }
    }
  }

  /** Deletes everything this remote contributed (its bundle was removed). */
  drain(): void {
    for (const kind of SWEEP_ORDER) this.sweep(kind, new Set());
    this.parked.clear();
    this.seen.clear();
    this.synced.clear();
    this.mesh.removeCluster(this.remote.name);
  }

  private kindOf(key: string): StateKind | 'canary' | 'config' | undefined {
    if (key === this.configKey) return 'config';
    if (this.canaryKeys.has(key)) return 'canary';
    return STATE_KINDS.find((k) => key.startsWith(this.prefixes[k]));
  }

  private onCanary(kind: StateKind, present: boolean): void {
    if (!present) {
      this.synced.delete(kind);
      return;
    }
    this.synced.add(kind);
    const seen = this.seen.get(kind);
    if (seen) {
      this.seen.delete(kind);
      this.sweep(kind, seen);
    }
  }

  private sweep(kind: StateKind, keep: ReadonlySet<string>): void {
    for (const key of [...this.entries[kind].keys()]) if (!keep.has(key)) this.remove(kind, key);
  }

  private upsert(kind: StateKind, key: string, value: string): void {
    const old = this.entries[kind].get(key);
    if (old && old.raw === value) return;
    this.parked.delete(key);
    const r = validateRemoteRecord(this.remote, this.mesh, key, value);
    if (!r.ok) {
      this.hooks.onReject(key, r.error);
      if (kind === 'ipcache' && WAITS_FOR_NODE.has(r.error.reason)) this.park(key, value);
      // the remote replaced an accepted value with an invalid one: it no longer claims the old
      if (old) this.remove(kind, key);
      return;
    }
    this.entries[kind].set(key, { raw: value, record: r.value });
    this.applyUpsert(r.value, old?.record);
    this.hooks.onApplied();
    if (kind === 'nodes') this.retryParked();
  }

  private park(key: string, value: string): void {
    if (this.parked.size < MAX_PARKED) this.parked.set(key, value);
  }

  /** A node arrived or changed: entries that waited for a pod CIDR or host IP may now fit. */
  private retryParked(): void {
    for (const [key, value] of [...this.parked]) {
      const r = validateRemoteRecord(this.remote, this.mesh, key, value);
      if (!r.ok) continue;
      this.parked.delete(key);
      this.entries.ipcache.set(key, { raw: value, record: r.value });
      this.applyUpsert(r.value, undefined);
      this.hooks.onApplied();
    }
  }

  private remove(kind: StateKind, key: string): void {
    const old = this.entries[kind].get(key);
    if (!old) return;
    this.entries[kind].delete(key);
    this.applyDelete(old.record);
    this.hooks.onApplied();
  }

  private applyUpsert(rec: RemoteRecord, old: RemoteRecord | undefined): void {
    const cluster = this.remote.name;
    switch (rec.kind) {
      case 'node':
        this.mesh.upsertNode({
          cluster,
          name: rec.node.Name,
          podCidrs: rec.podCidrs,
          ips: rec.ips,
        });
        return this.sink.upsertNode(cluster, rec.node, { podCidrs: rec.podCidrs, ips: rec.ips });
      case 'identity':
        return this.sink.upsertIdentity(cluster, rec.identity);
      case 'ipcache':
        if (old?.kind === 'ipcache' && old.entry.IP !== rec.entry.IP) this.releaseIp(old.entry.IP);
        this.mesh.setEndpoint(rec.entry.IP, cluster);
        return this.sink.upsertIpcache(cluster, rec.entry);
      case 'service':
        return this.sink.upsertService(cluster, rec.service);
      default:
        return;
    }
  }

  private applyDelete(rec: RemoteRecord): void {
    const cluster = this.remote.name;
    switch (rec.kind) {
      case 'node':
        this.mesh.removeNode(cluster, rec.node.Name);
        return this.sink.deleteNode(cluster, rec.node);
      case 'identity':
        return this.sink.deleteIdentity(cluster, rec.identity);
      case 'ipcache':
        this.releaseIp(rec.entry.IP);
        return this.sink.deleteIpcache(cluster, rec.entry);
      case 'service':
        return this.sink.deleteService(cluster, rec.service);
      default:
        return;
    }
  }

  private releaseIp(ip: string): void {
    if (this.mesh.endpointOwner(ip) === this.remote.name) this.mesh.removeEndpoint(ip);
  }
}
