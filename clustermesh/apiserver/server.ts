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
  type KeyQueue,
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
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export interface ClusterMeshStatus {
  synced: Record<string, boolean>;
  entries: Record<string, number>;
  writer: MeshWriterStats;
  backlog: number;
}

type Prefix = 'identities' | 'ipcache' | 'nodes' | 'services';

export class ClusterMeshApiServer {
  private readonly writer: MeshWriter;
  private readonly mirrors: Record<Prefix, PrefixMirror>;
  private readonly resources: Resource<KubeObject>[] = [];
  private readonly queues: KeyQueue[] = [];
  private readonly slicesByService = new Map<string, Map<string, EndpointSlice>>();
  private ipcache: EndpointIpcache | undefined;
  private readonly pending: Promise<void>[] = [];
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
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ipcache?.stop();
    for (const q of this.queues) q.stop();
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

  private startIdentities(): void {
    const m = this.mirrors.identities;
    const q = this.resource(CiliumIdentities).subscribe((name, ci) => {
      const entry = identityEntry(name, ci);
      if (entry) return m.put(entry.key, entry.value);
      const key = identityKeyOf(name);
      if (key) m.remove(key);
    });
    this.queues.push(q);
    this.pending.push(this.afterSync('identities', q.synced));
  }

  private startEndpoints(): void {
    const m = this.mirrors.ipcache;
    const ipcache = (this.ipcache = new EndpointIpcache(this.resource(CiliumEndpoints)));
    ipcache.onChange((ip, row) =>
      this.guard('ipcache', ip, () =>
        row ? this.putEntry(m, ipcacheEntry(row)) : m.remove(ipcacheKey(ip)),
      ),
    );
    ipcache.start();
    this.pending.push(this.afterSync('ipcache', ipcache.synced));
  }

  private startNodes(): void {
    const m = this.mirrors.nodes;
    const q = this.resource(Nodes).subscribe((name, node) =>
      this.guard('nodes', name, () => {
        if (node) this.putEntry(m, nodeEntry(this.opts.cluster, node));
        else m.remove(nodeKey(this.opts.cluster.name, name));
      }),
    );
    this.queues.push(q);
    this.pending.push(this.afterSync('nodes', q.synced));
  }

  /** Slices first: a service's first handling must see all of its backends. */
  private startServices(): void {
    const services = this.resource(Services);
    const slices = this.resource(EndpointSlices);
    let queue: KeyQueue | undefined;
    slices.onChange((c) => {
      const svc = sliceServiceKey(c.object);
      if (!svc) return;
      let bySlice = this.slicesByService.get(svc);
      if (!bySlice) this.slicesByService.set(svc, (bySlice = new Map()));
      if (c.type === 'delete') bySlice.delete(c.key);
      else bySlice.set(c.key, c.object);
      if (bySlice.size === 0) this.slicesByService.delete(svc);
      queue?.add(svc);
    });
    const m = this.mirrors.services;
    const synced = slices.synced.then(() => {
      if (this.stopped) return;
      queue = services.subscribe((key, svc) =>
        this.guard('services', key, () => {
          const related = [...(this.slicesByService.get(key)?.values() ?? [])];
          const entry = serviceEntry(this.opts.cluster, svc, related);
          if (entry) return this.putEntry(m, entry);
          const { namespace, name } = splitKey(key);
          if (namespace) m.remove(serviceKey(this.opts.cluster.name, namespace, name));
        }),
      );
      this.queues.push(queue);
      return queue.synced;
    });
    this.pending.push(this.afterSync('services', synced));
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
