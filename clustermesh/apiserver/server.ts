// The clustermesh API server: watches the local cluster's Kubernetes API (CiliumIdentities,
// CiliumEndpoints, Nodes, global Services with their EndpointSlices) and mirrors them into the
// cluster's mesh etcd in Cilium's kvstore layout, through one batched, rate-bounded writer.
import {
  CiliumEndpoints,
  CiliumIdentities,
  EndpointIpcache,
  EndpointSlices,
  Nodes,
  Resource,
  Services,
  splitKey,
  type EndpointSlice,
  objectKey,
  type Change,
  type KubeApi,
  type KubeObject,
  type ResourceDef,
} from '../../agent/k8s/index.ts';
import {
  CLUSTER_CONFIG_PREFIX,
  IDENTITY_ID_PREFIX,
  IDENTITIES_PREFIX,
  IPCACHE_PREFIX,
  NODES_PREFIX,
  SERVICES_PREFIX,
  SYNCED_PREFIX,
  clusterConfigFor,
  clusterConfigKey,
  encodeClusterConfig,
  ipcacheKey,
  isValidClusterName,
  nodeKey,
  serviceKey,
} from '../kvstore/index.ts';
import { MeshWriter } from './mesh-writer.ts';
import { PrefixMirror } from './prefix-mirror.ts';
import {
  identityEntry,
  identityKeyOf,
  ipcacheEntry,
  nodeEntry,
  serviceEntry,
  sliceServiceKey,
  type LocalCluster,
} from './records.ts';
import {
  ClusterMeshError,
  type MeshKv,
  type MeshWriterOptions,
  type MeshWriterStats,
} from './types.ts';

export interface ClusterMeshApiServerOptions {
  cluster: LocalCluster;
  kube: KubeApi;
  kv: MeshKv;
  writer?: MeshWriterOptions;
  /** Period of the full pass that repairs drift in the mesh etcd; default 5 minutes. */
  resyncIntervalMs?: number;
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export interface ClusterMeshStatus {
  synced: Record<string, boolean>;
  entries: Record<string, number>;
  writer: MeshWriterStats;
  backlog: number;
}

type Prefix = 'identities' | 'ipcache' | 'nodes' | 'services';

/** A watched resource and the keys (of the mirrored kind) one of its changes touches. */
interface Watched {
  resource: { synced: Promise<void>; onChange(l: (c: Change<KubeObject>) => void): unknown };
  keysOf: (c: Change<KubeObject>) => Iterable<string>;
}

function watched<T extends KubeObject>(
  resource: Resource<T>,
  keysOf: (c: Change<T>) => Iterable<string> = (c) => [c.key],
): Watched {
  return {
    resource: resource as unknown as Watched['resource'],
    keysOf: keysOf as (c: Change<KubeObject>) => Iterable<string>,
  };
}

export class ClusterMeshApiServer {
  private readonly writer: MeshWriter;
  private readonly mirrors: Record<Prefix, PrefixMirror>;
  private readonly resources: Resource<KubeObject>[] = [];
  private readonly slicesByService = new Map<string, Map<string, EndpointSlice>>();
  private readonly pending: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private started = false;
  private syncedResolve!: () => void;
  private syncedReject!: (err: Error) => void;
  /** Resolves once every prefix's canary is written; rejects if stopped before. */
  readonly synced: Promise<void>;

  constructor(private readonly opts: ClusterMeshApiServerOptions) {
    const { name, id } = opts.cluster;
    if (!isValidClusterName(name) || !Number.isInteger(id) || id < 1 || id > 255) {
      throw new ClusterMeshError(
        'ERR_CLUSTERMESH_CONFIG',
        `cluster ${JSON.stringify(name)} with ID ${id}: give a valid cluster name and an ID in 1..255`,
      );
    }
    this.writer = new MeshWriter(opts.kv, { onLog: opts.onLog, ...opts.writer });
    const mirror = (state: string, scan: string) =>
      new PrefixMirror(this.writer, name, state, scan);
    this.mirrors = {
      identities: mirror(IDENTITIES_PREFIX, `${IDENTITY_ID_PREFIX}/`),
      ipcache: mirror(IPCACHE_PREFIX, `${IPCACHE_PREFIX}/`),
      nodes: mirror(NODES_PREFIX, `${NODES_PREFIX}/${name}/`),
      services: mirror(SERVICES_PREFIX, `${SERVICES_PREFIX}/${name}/`),
    };
    this.synced = new Promise((resolve, reject) => {
      this.syncedResolve = resolve;
      this.syncedReject = reject;
    });
    this.synced.catch(() => {}); // a stop before sync is not an unhandled rejection
  }

  /** Re-reads every prefix and repairs drift (also run every `resyncIntervalMs`). */
  async resync(): Promise<number> {
    let repairs = 0;
    const { name, id } = this.opts.cluster;
    const configKey = clusterConfigKey(name);
    const config = encodeClusterConfig(clusterConfigFor(id));
    await this.writer.load(configKey);
    if (this.writer.storedValue(configKey) !== config) repairs++;
    this.writer.set(configKey, config);
    for (const [prefix, m] of Object.entries(this.mirrors)) {
      const n = await m.resync();
      if (n > 0) this.opts.onLog?.('drift-repaired', { prefix, keys: n });
      repairs += n;
    }
    return repairs;
  }

  /** Learns what the mesh etcd holds, writes the cluster config, starts the watches. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { name, id } = this.opts.cluster;
    try {
      await this.writer.load(`${CLUSTER_CONFIG_PREFIX}/${name}`);
      await this.writer.load(`${SYNCED_PREFIX}/${name}/`);
      for (const m of Object.values(this.mirrors)) await m.load();
    } catch (cause) {
      throw new ClusterMeshError(
        'ERR_CLUSTERMESH_ETCD',
        `reading the mesh etcd failed: ${(cause as Error).message}; check its address, CA and the writer certificate`,
        { cause },
      );
    }
    // The config first: readers check it before they trust anything of this cluster.
    this.writer.set(clusterConfigKey(name), encodeClusterConfig(clusterConfigFor(id)));
    await this.writer.barrier();
    if (this.stopped) return;
    this.startIdentities();
    this.startEndpoints();
    this.startNodes();
    this.startServices();
    void this.whenAllSynced();
    this.resyncTimer = setInterval(
      () => {
        this.resync().catch((err) => this.opts.onLog?.('resync-failed', { error: String(err) }));
      },
      this.opts.resyncIntervalMs ?? 5 * 60_000,
    );
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await Promise.all(this.resources.map((r) => r.stop()));
    this.writer.stop();
    this.syncedReject(
      new ClusterMeshError('ERR_CLUSTERMESH_STOPPED', 'stopped before the initial sync'),
    );
  }

  status(): ClusterMeshStatus {
    const synced: Record<string, boolean> = {};
    const entries: Record<string, number> = {};
    for (const [p, m] of Object.entries(this.mirrors)) {
      synced[p] = m.isSynced;
      entries[p] = m.size;
    }
    return { synced, entries, writer: { ...this.writer.stats }, backlog: this.writer.backlog };
  }

  private resource<T extends KubeObject>(def: ResourceDef<T>): Resource<T> {
    const r = new Resource<T>(this.opts.kube, def, { onLog: this.opts.onLog });
    this.resources.push(r as unknown as Resource<KubeObject>);
    r.start();
    return r;
  }

  private async afterSync(prefix: Prefix, sourceSynced: Promise<void>): Promise<void> {
    await sourceSynced;
    if (this.stopped) return;
    const stale = await this.mirrors[prefix].markSynced();
    this.opts.onLog?.('prefix-synced', { prefix, entries: this.mirrors[prefix].size, stale });
  }

  /**
   * Level-triggered mirroring of one prefix: once every source listed, `handle` runs for each key
   * of the store (it reads the latest object), then for each key that changes. Raw change events
   * rather than key queues: handlers are synchronous and never fail (see guard), and a queue
   * per object costs more than the write itself at 10,000s of endpoints.
   */
  private level(
    prefix: Prefix,
    sources: Watched[],
    allKeys: () => Iterable<string>,
    handle: (key: string) => void,
  ): void {
    let ready = false;
    const run = (key: string) => this.guard(prefix, key, () => handle(key));
    for (const { resource, keysOf } of sources) {
      resource.onChange((c) => {
        if (ready) for (const key of keysOf(c)) run(key);
      });
    }
    const listed = Promise.all(sources.map((s) => s.resource.synced)).then(() => {
      if (this.stopped) return;
      for (const key of allKeys()) run(key);
      ready = true;
    });
    this.pending.push(this.afterSync(prefix, listed));
  }

  private startIdentities(): void {
    const m = this.mirrors.identities;
    const r = this.resource(CiliumIdentities);
    this.level(
      'identities',
      [watched(r)],
      () => r.list().map(objectKey),
      (name) => {
        const entry = identityEntry(name, r.get(name));
        if (entry) return this.putEntry(m, entry);
        const key = identityKeyOf(name);
        if (key) m.remove(key);
      },
    );
  }

  private startEndpoints(): void {
    const m = this.mirrors.ipcache;
    const r = this.resource(CiliumEndpoints);
    // EndpointIpcache elects one row per IP when several objects claim it; fed directly.
    const ipcache = new EndpointIpcache(r);
    ipcache.onChange((ip, row) =>
      this.guard('ipcache', ip, () =>
        row ? this.putEntry(m, ipcacheEntry(row)) : m.remove(ipcacheKey(ip)),
      ),
    );
    this.level(
      'ipcache',
      [watched(r)],
      () => r.list().map(objectKey),
      (key) => ipcache.apply(key, r.get(key)),
    );
  }

  private startNodes(): void {
    const m = this.mirrors.nodes;
    const r = this.resource(Nodes);
    this.level(
      'nodes',
      [watched(r)],
      () => r.list().map(objectKey),
      (name) => {
        const node = r.get(name);
        if (node) this.putEntry(m, nodeEntry(this.opts.cluster, node));
        else m.remove(nodeKey(this.opts.cluster.name, name));
      },
    );
  }

  /** A service is first written once services and slices are both listed: with its backends. */
  private startServices(): void {
    const services = this.resource(Services);
    const slices = this.resource(EndpointSlices);
    slices.onChange((c) => this.indexSlice(c));
    const m = this.mirrors.services;
    const sliceKeys = (c: Change<EndpointSlice>) => [sliceServiceKey(c.object) ?? []].flat();
    const sources = [watched(services), watched(slices, sliceKeys)];
    this.level(
      'services',
      sources,
      () => services.list().map(objectKey),
      (key) => {
        const related = [...(this.slicesByService.get(key)?.values() ?? [])];
        const entry = serviceEntry(this.opts.cluster, services.get(key), related);
        if (entry) return this.putEntry(m, entry);
        const { namespace, name } = splitKey(key);
        if (namespace) m.remove(serviceKey(this.opts.cluster.name, namespace, name));
      },
    );
  }

  private indexSlice(c: Change<EndpointSlice>): void {
    const svc = sliceServiceKey(c.object);
    if (!svc) return;
    let bySlice = this.slicesByService.get(svc);
    if (!bySlice) this.slicesByService.set(svc, (bySlice = new Map()));
    if (c.type === 'delete') bySlice.delete(c.key);
    else bySlice.set(c.key, c.object);
    if (bySlice.size === 0) this.slicesByService.delete(svc);
  }

  private putEntry(m: PrefixMirror, e: { key: string; value: string }): void {
    m.put(e.key, e.value);
  }

  /** An object that cannot form a key (a caller bug upstream) is logged, never retried forever. */
  private guard(prefix: Prefix, name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.onLog?.('object-skipped', { prefix, name, error: String(err) });
    }
  }

  private async whenAllSynced(): Promise<void> {
    // startServices pushes its promise synchronously, so all four are here.
    await Promise.all(this.pending);
    if (this.stopped) return;
    this.opts.onLog?.('synced', { cluster: this.opts.cluster.name });
    this.syncedResolve();
  }
}
