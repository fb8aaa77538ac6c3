// Shapes of the clustermesh API server: the mesh kvstore port and the server's settings.
// Imports nothing from siblings.

/** One write of a batch: a put, or a delete when `value` is null. */
export interface KvOp {
  key: string;
  value: string | null;
}

/**
 * The slice of the mesh etcd the mirror uses. `EtcdMeshKv` is the real one; unit tests of the
 * sync logic use an in-memory fake.
 */
export interface MeshKv {
  /** Every key under `prefix` with its value. */
  list(prefix: string): Promise<Map<string, string>>;
  /** Applies all ops atomically (one etcd transaction). */
  commit(ops: readonly KvOp[]): Promise<void>;
}

export interface MeshWriterOptions {
  /** Ops per transaction; etcd refuses more than its --max-txn-ops (default 128). */
  maxOpsPerTxn?: number;
  /** Rate bound on ops written, a token bucket (burst: one second's worth). */
  maxOpsPerSecond?: number;
  /** Transactions in flight at once. */
  maxTxnsInFlight?: number;
  /** Back-off of a failed transaction, before its ops are tried again. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export interface MeshWriterStats {
  txns: number;
  puts: number;
  deletes: number;
  failedTxns: number;
  /** Updates dropped because etcd already held the value (restart without rewrites). */
  unchanged: number;
}

export type ClusterMeshErrorCode =
  'ERR_CLUSTERMESH_CONFIG' | 'ERR_CLUSTERMESH_ETCD' | 'ERR_CLUSTERMESH_STOPPED';

export class ClusterMeshError extends Error {
  constructor(
    readonly code: ClusterMeshErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ClusterMeshError';
  }
}
