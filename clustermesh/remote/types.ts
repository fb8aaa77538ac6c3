// Contracts of the remote-cluster client: the watch source it reads (etcd, or later a
// KVStoreMesh-style cache), the sink the agent daemon implements, and the status it reports.
// This file imports nothing from its siblings.
import type {
  ClusterService,
  IdentityRecord,
  IPIdentityPair,
  NodeRecord,
  RejectReason,
} from '../kvstore/index.ts';

/** One key and its raw value as stored in the remote's kvstore. */
export interface KeyValue {
  key: string;
  value: string;
}

export type WatchEvent =
  { type: 'put'; key: string; value: string } | { type: 'delete'; key: string };

/** Every key under some prefixes, read at one revision (a consistent snapshot). */
export interface Listing {
  revision: number;
  entries: KeyValue[];
}

export interface WatchHandle {
  close(): Promise<void>;
}

/**
 * Where a remote cluster's records come from. The merge logic only sees this interface, so a
 * per-cluster cache in front of the remotes can replace the direct etcd source unchanged.
 * Methods throw (or reject) on connection failures; the caller reconnects.
 */
export interface RemoteWatchSource {
  /** The value at `key`, or undefined when absent. */
  get(key: string): Promise<string | undefined>;
  /** Lists every key under each of `prefixes`, all at the same revision, in prefix order. */
  list(prefixes: readonly string[]): Promise<Listing>;
  /**
   * Streams changes under `prefixes` made after `afterRevision`, in revision order across all
   * prefixes (a node put before an ipcache entry arrives before it). `onBroken` is called once
   * when the stream ends for any reason (disconnect, compaction); no events follow it.
   */
  watch(
    prefixes: readonly string[],
    afterRevision: number,
    onEvents: (events: WatchEvent[]) => void,
    onBroken: (error: Error) => void,
  ): Promise<WatchHandle>;
  /** Releases the connection; idempotent. */
  close(): Promise<void>;
}

/** The parts of a node record the daemon needs besides the record: canonical CIDRs and IPs. */
export interface NodeAddresses {
  podCidrs: string[];
  ips: string[];
}

/**
 * What the agent daemon does with accepted remote state. Every call names the remote cluster;
 * deletes carry the previously applied record. Calls are synchronous: queue, do not block.
 */
export interface RemoteSink {
  upsertIdentity(cluster: string, identity: IdentityRecord): void;
  deleteIdentity(cluster: string, identity: IdentityRecord): void;
  upsertIpcache(cluster: string, entry: IPIdentityPair): void;
  deleteIpcache(cluster: string, entry: IPIdentityPair): void;
  upsertNode(cluster: string, node: NodeRecord, addresses: NodeAddresses): void;
  deleteNode(cluster: string, node: NodeRecord): void;
  upsertService(cluster: string, service: ClusterService): void;
  deleteService(cluster: string, service: ClusterService): void;
}

/** The four kinds of state a remote contributes. */
export type StateKind = 'nodes' | 'identities' | 'ipcache' | 'services';

export type RemoteState =
  /** not yet started, or waiting for the first connection attempt */
  | 'connecting'
  | 'connected'
  /** lost or failed connection; state kept, retrying with backoff */
  | 'disconnected'
  /** the remote's cluster config or bundle was refused; retrying with backoff */
  | 'refused'
  /** stopped or drained */
  | 'stopped';

export interface RemoteError {
  /** stable code, e.g. ERR_REMOTE_CONNECT, cluster-id-local, ERR_BUNDLE_EXPIRED */
  code: string;
  message: string;
  at: string;
}

/** Per remote, for `isthmus clustermesh status`. */
export interface RemoteStatus {
  cluster: string;
  clusterId: number;
  /** the bundle file it came from, when read from a bundle directory */
  source?: string;
  state: RemoteState;
  connected: boolean;
  /** why it is not connected (empty when connected) */
  reason: string;
  lastError?: RemoteError;
  /** per state kind: the listing is known complete (the remote's synced canary was seen) */
  synced: Record<StateKind, boolean>;
  /** connected and every kind synced */
  ready: boolean;
  counts: { identities: number; endpoints: number; nodes: number; services: number };
  /** when the last change was applied through the sink */
  lastUpdate?: string;
  lastUpdateAgeMs?: number;
  /** rejected records by reason since start */
  rejected: Partial<Record<RejectReason, number>>;
  /** successful connections so far (1 after the first, +1 per reconnect) */
  connections: number;
}

/** The subset of a pino logger used by the remote client. */
export interface RemoteLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}
