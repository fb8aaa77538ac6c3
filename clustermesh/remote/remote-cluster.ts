// One remote cluster, read through a RemoteWatchSource built from its verified connection bundle:
// connect, check its cluster config, list, watch; on any failure keep every applied record (no
// deletes: a remote etcd outage must not cut traffic), reconnect with backoff and jitter, relist,
// and let RemoteRecords sweep only what is gone once the remote's canaries say so.
import type { Registry } from 'prom-client';
import type { ConnectionBundle } from '../../certs/index.ts';
import {
  clusterConfigKey,
  rejectedRecordsCounter,
  RemoteRecordFilter,
  validateClusterConfig,
  type ClusterRef,
  type MeshTable,
  type Rejection,
} from '../kvstore/index.ts';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import { etcdSourceFor } from './etcd-source.ts';
import { RemoteRecords, STATE_KINDS, watchedPrefixes } from './remote-records.ts';
import type {
  RemoteError,
  RemoteLogger,
  RemoteSink,
  RemoteState,
  RemoteStatus,
  RemoteWatchSource,
  StateKind,
  WatchHandle,
} from './types.ts';

export interface RemoteClusterOptions {
  /** a bundle verified with certs' verifyBundle */
  bundle: ConnectionBundle;
  /** the agent's mesh view: local cluster, local nodes and pods; remotes add theirs */
  mesh: MeshTable;
  sink: RemoteSink;
  log: RemoteLogger;
  /** where the rejected-records counter lives */
  registry: Registry;
  /** builds the source for a bundle; default: the remote's mesh etcd over mTLS */
  connect?: (bundle: ConnectionBundle) => RemoteWatchSource;
  backoff?: Partial<BackoffOptions>;
  /** a cheap read this often detects a silently dead connection */
  heartbeatMs?: number;
  /** deadline of each etcd call, heartbeat included (default source only) */
  callTimeoutMs?: number;
  /** where the bundle came from (shown in status) */
  source?: string;
}

/** A failure of one session; `refused` ones are the remote's fault, not the network's. */
class SessionError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly refused = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class RemoteCluster {
  readonly name: string;
  private bundle: ConnectionBundle;
  private readonly records: RemoteRecords;
  private readonly filter: RemoteRecordFilter;
  private readonly backoff: BackoffOptions;
  private readonly rejected: Partial<Record<Rejection['reason'], number>> = {};
  private state: RemoteState = 'connecting';
  private reason = 'not started';
  private lastError: RemoteError | undefined;
  private lastUpdate: number | undefined;
  private connections = 0;
  private loop: Promise<void> | undefined;
  private stopped = false;
  private skipBackoff = false;
  private endSession: ((e: Error) => void) | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly opts: RemoteClusterOptions) {
    this.bundle = opts.bundle;
    this.name = opts.bundle.cluster;
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.filter = new RemoteRecordFilter(
      this.ref(),
      opts.mesh,
      opts.log,
      rejectedRecordsCounter(opts.registry),
    );
    this.records = new RemoteRecords(this.ref(), opts.mesh, opts.sink, {
      onReject: (key, r) => this.reject(key, r),
      onConfig: (value) => this.configChanged(value),
      onApplied: () => (this.lastUpdate = Date.now()),
    });
  }

  get clusterId(): number {
    return this.bundle.clusterId;
  }

  start(): void {
    if (this.loop || this.stopped) return;
    this.loop = this.run();
  }

  /** Stops reading; applied state stays (the agent is shutting down, or a reconnect follows). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.endSession?.(new SessionError('ERR_REMOTE_STOPPED', 'stopped'));
    this.wake?.();
    await this.loop;
    this.state = 'stopped';
    this.reason = 'stopped';
  }

  /** Stops and deletes everything this remote contributed, through the sink. */
  async drain(): Promise<void> {
    await this.stop();
    this.records.drain();
    this.reason = 'drained: its bundle was removed';
  }

  /**
   * Uses a new bundle of the same cluster (rotated certificates, moved endpoints): the current
   * connection is closed and a new one relists; nothing is deleted that is still there.
   */
  replaceBundle(bundle: ConnectionBundle): void {
    if (bundle.cluster !== this.name || bundle.clusterId !== this.bundle.clusterId) {
      throw new Error(
        `replaceBundle: ${bundle.cluster}/${bundle.clusterId} is not ${this.name}/${this.bundle.clusterId}; drain this remote and create a new one`,
      );
    }
    this.bundle = bundle;
    this.skipBackoff = true;
    this.endSession?.(new SessionError('ERR_REMOTE_BUNDLE_CHANGED', 'connection bundle replaced'));
    this.wake?.();
  }

  status(): RemoteStatus {
    const counts = this.records.counts();
    const synced = Object.fromEntries(
      STATE_KINDS.map((k) => [k, this.records.isSynced(k)]),
    ) as Record<StateKind, boolean>;
    const connected = this.state === 'connected';
    return {
      cluster: this.name,
      clusterId: this.bundle.clusterId,
      ...(this.opts.source !== undefined ? { source: this.opts.source } : {}),
      state: this.state,
      connected,
      reason: connected ? '' : this.reason,
      ...(this.lastError ? { lastError: { ...this.lastError } } : {}),
      synced,
      ready: connected && STATE_KINDS.every((k) => synced[k]),
      counts: {
        identities: counts.identities,
        endpoints: counts.ipcache,
        nodes: counts.nodes,
        services: counts.services,
      },
      ...(this.lastUpdate !== undefined
        ? {
            lastUpdate: new Date(this.lastUpdate).toISOString(),
            lastUpdateAgeMs: Date.now() - this.lastUpdate,
          }
        : {}),
      rejected: { ...this.rejected },
      connections: this.connections,
    };
  }

  private ref(): ClusterRef {
    return { name: this.bundle.cluster, id: this.bundle.clusterId };
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const hadConnection = await this.session();
      if (this.stopped) break;
      if (hadConnection) attempt = 0;
      if (this.skipBackoff) {
        this.skipBackoff = false;
        continue;
      }
      await this.sleep(backoffDelay(attempt++, this.backoff));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).then(() => (this.wake = undefined));
  }

  /** One connection, from connect to its end; resolves whether it got to the watching state. */
  private async session(): Promise<boolean> {
    let ended!: (e: Error) => void;
    const end = new Promise<Error>((resolve) => (ended = resolve));
    let isOver = false;
    // callbacks of this session end this session only, never a later one
    const endThis = (e: Error) => {
      isOver = true;
      ended(e);
    };
    this.endSession = endThis;
    // stop() or a new bundle need not wait for a call that hangs until its deadline
    const orEnd = <T>(p: Promise<T>) =>
      Promise.race([p, end.then((e): Promise<T> => Promise.reject(e))]);
    const bundle = this.bundle;
    let source: RemoteWatchSource | undefined;
    let watch: WatchHandle | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let connected = false;
    try {
      source = this.opts.connect
        ? this.opts.connect(bundle)
        : etcdSourceFor(bundle, { callTimeoutMs: this.opts.callTimeoutMs ?? 5000 });
      await this.checkConfig(await orEnd(source.get(clusterConfigKey(this.name))));
      const prefixes = watchedPrefixes(this.name);
      const listing = await orEnd(source.list(prefixes));
      this.opts.mesh.setCluster(this.ref());
      this.records.applyListing(listing.entries);
      const watching = source.watch(
        prefixes,
        listing.revision,
        (events) => !isOver && this.records.applyEvents(events),
        endThis,
      );
      watching.then((w) => (watch = w)).catch(() => undefined);
      watch = await orEnd(watching);
      connected = true;
      this.connections++;
      this.state = 'connected';
      this.opts.log.info(
        { cluster: this.name, revision: listing.revision, connections: this.connections },
        'connected to remote cluster',
      );
      const s = source;
      heartbeat = setInterval(() => {
        s.get(clusterConfigKey(this.name)).catch(endThis);
      }, this.opts.heartbeatMs ?? 10_000).unref();
      throw await end;
    } catch (e) {
      this.recordFailure(e as Error);
    } finally {
      this.endSession = undefined;
      clearInterval(heartbeat);
      await watch?.close().catch(() => undefined);
      await source?.close().catch(() => undefined);
    }
    return connected;
  }

  private async checkConfig(value: string | undefined): Promise<void> {
    const key = clusterConfigKey(this.name);
    if (value === undefined) {
      throw new SessionError(
        'ERR_REMOTE_NO_CLUSTER_CONFIG',
        `${this.name} has no ${key}: its clustermesh API server has not started (or this bundle points at the wrong etcd)`,
        true,
      );
    }
    const r = validateClusterConfig(this.ref(), this.opts.mesh, value);
    if (!r.ok) {
      this.reject(key, r.error);
      throw new SessionError(r.error.reason, `cluster config refused: ${r.error.detail}`, true);
    }
  }

  private configChanged(value: string | undefined): void {
    const end = this.endSession; // called from the current session's events
    this.checkConfig(value).catch((e: Error) => end?.(e));
  }

  private reject(key: string, rejection: Rejection): void {
    this.rejected[rejection.reason] = (this.rejected[rejection.reason] ?? 0) + 1;
    this.filter.report(key, rejection);
  }

  private recordFailure(e: Error): void {
    if (this.stopped || (e instanceof SessionError && e.code === 'ERR_REMOTE_STOPPED')) return;
    const code = (e as { code?: unknown }).code;
    const refused = e instanceof SessionError && e.refused;
    this.state = refused ? 'refused' : 'disconnected';
    this.reason = e.message;
    if (e instanceof SessionError && e.code === 'ERR_REMOTE_BUNDLE_CHANGED') return;
    this.lastError = {
      code: typeof code === 'string' ? code : 'ERR_REMOTE_CONNECT',
      message: e.message,
      at: new Date().toISOString(),
    };
    this.opts.log.warn(
      { cluster: this.name, code: this.lastError.code, error: e.message },
      refused ? 'remote cluster refused' : 'remote cluster connection lost or failed; state kept',
    );
  }
}
