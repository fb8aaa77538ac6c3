// Collects CiliumIdentities nothing uses: an identity is in use while a CiliumEndpoint of the
// cluster references it or a local allocation holds it. One unused for the whole grace period
// (watched state) is checked again against a fresh list of endpoints and deleted with uid and
// resourceVersion preconditions, so several agents may run this at once safely.
import type { Resource } from '../k8s/resource.ts';
import type { CiliumEndpoint, CiliumIdentity } from '../k8s/resources.ts';
import { CiliumEndpoints, CiliumIdentities } from '../k8s/resources.ts';
import { isK8sError, type KubeApi } from '../k8s/types.ts';
import { unrefTimeout } from '../k8s/backoff.ts';
import { identityId } from './k8s-identity-object.ts';
import { clusterOf } from './types.ts';

export interface IdentityGcOptions {
  api: KubeApi;
  clusterId: number;
  identities: Resource<CiliumIdentity>;
  endpoints: Resource<CiliumEndpoint>;
  /** How long an identity must stay unused before it is deleted. */
  graceMs: number;
  intervalMs?: number;
  /** Ids held by this agent's allocator. */
  held?: () => ReadonlySet<number>;
  now?: () => number;
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export class IdentityGarbageCollector {
  /** id -> when it was first seen unused. */
  private readonly unusedSince = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private pass: Promise<unknown> | undefined;
  readonly deleted: number[] = [];

  constructor(private readonly opts: IdentityGcOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.pass?.catch(() => undefined);
  }

  /** One pass; returns the ids deleted by it. */
  async runOnce(): Promise<number[]> {
    await Promise.all([this.opts.identities.synced, this.opts.endpoints.synced]);
    const now = (this.opts.now ?? Date.now)();
    const inUse = referencedIds(this.opts.endpoints.list());
    for (const id of this.opts.held?.() ?? []) inUse.add(id);
    const candidates: CiliumIdentity[] = [];
    const present = new Set<number>();
    for (const obj of this.opts.identities.list()) {
      const id = identityId(obj);
      if (id === undefined || clusterOf(id) !== this.opts.clusterId) continue;
      present.add(id);
      if (inUse.has(id)) {
        this.unusedSince.delete(id);
        continue;
      }
      const since = this.unusedSince.get(id);
      if (since === undefined) this.unusedSince.set(id, now);
      else if (now - since >= this.opts.graceMs) candidates.push(obj);
    }
    for (const id of this.unusedSince.keys()) if (!present.has(id)) this.unusedSince.delete(id);
    if (candidates.length === 0) return [];
    // The watch may lag: confirm against the API server before deleting anything.
    const fresh = referencedIds((await this.opts.api.list(CiliumEndpoints)).items);
    const removed: number[] = [];
    for (const obj of candidates) {
      const id = identityId(obj)!;
      if (fresh.has(id) || this.opts.held?.().has(id)) {
        this.unusedSince.delete(id);
        continue;
      }
      if (await this.deleteIfUnchanged(obj)) removed.push(id);
      this.unusedSince.delete(id);
    }
    this.deleted.push(...removed);
    if (removed.length) this.opts.onLog?.('identities-collected', { ids: removed });
    return removed;
  }

  private async deleteIfUnchanged(obj: CiliumIdentity): Promise<boolean> {
    try {
      await this.opts.api.delete(CiliumIdentities, obj.metadata.name, undefined, {
        ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
        ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
      });
      return true;
    } catch (err) {
      if (isK8sError(err, 'K8S_NOT_FOUND') || isK8sError(err, 'K8S_CONFLICT')) return false;
      throw err;
    }
  }

  private schedule(): void {
    if (!this.running) return;
    const interval = this.opts.intervalMs ?? Math.max(1000, this.opts.graceMs / 4);
    this.timer = unrefTimeout(() => {
      this.pass = this.runOnce()
        .catch((err) => this.opts.onLog?.('identity-gc-failed', { error: String(err) }))
        .finally(() => this.schedule());
    }, interval);
  }
}

/** Identity ids referenced by endpoint objects. */
export function referencedIds(endpoints: CiliumEndpoint[]): Set<number> {
  const ids = new Set<number>();
  for (const cep of endpoints) {
    const id = cep.status?.identity?.id;
    if (Number.isInteger(id)) ids.add(id as number);
  }
  return ids;
}
