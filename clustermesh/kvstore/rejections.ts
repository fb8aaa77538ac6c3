// What a reader does with a remote record: validate it, and for a rejection log the reason and
// count it (DESIGN.md: "dropped with a logged reason and a metric, never applied").
import { Counter, type Registry } from 'prom-client';
import type { ClusterRef, MeshView } from './mesh-view.ts';
import type { Rejection } from './types.ts';
import { validateRemoteRecord, type RemoteRecord } from './validate.ts';

export const REJECTED_RECORDS_METRIC = 'isthmus_clustermesh_remote_records_rejected_total';

/** The rejection counter in `registry` (created once, shared by every remote). */
export function rejectedRecordsCounter(registry: Registry): Counter<'cluster' | 'reason'> {
  const existing = registry.getSingleMetric(REJECTED_RECORDS_METRIC);
  if (existing) return existing as Counter<'cluster' | 'reason'>;
  return new Counter({
    name: REJECTED_RECORDS_METRIC,
    help: 'Records read from a remote cluster that failed validation and were dropped, by cluster and reason',
    labelNames: ['cluster', 'reason'],
    registers: [registry],
  });
}

/** The subset of a pino logger used here. */
export interface WarnLogger {
  warn(fields: Record<string, unknown>, message: string): void;
}

/** Validates records of one remote; rejections are logged and counted, accepted ones returned. */
export class RemoteRecordFilter {
  constructor(
    private readonly remote: ClusterRef,
    private readonly mesh: MeshView,
    private readonly log: WarnLogger,
    private readonly rejected: Counter<'cluster' | 'reason'>,
  ) {}

  /** The validated record, or undefined when it was rejected (and logged and counted). */
  accept(key: string, value: string): RemoteRecord | undefined {
    const r = validateRemoteRecord(this.remote, this.mesh, key, value);
    if (r.ok) return r.value;
    this.report(key, r.error);
    return undefined;
  }

  report(key: string, rejection: Rejection): void {
    this.rejected.inc({ cluster: this.remote.name, reason: rejection.reason });
    this.log.warn(
      { cluster: this.remote.name, key, reason: rejection.reason, detail: rejection.detail },
      'dropped a record from a remote cluster that failed validation',
    );
  }
}
