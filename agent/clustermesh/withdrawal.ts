// Withdrawal of a lost cluster's service backends. The remote client keeps a disconnected
// cluster's state (no deletes), which is right for identities and routes, but a dead cluster
// must stop receiving service traffic: once a remote has not been connected for `afterMs`, its
// backends leave the service table; they come back as soon as it is connected again.
// Cilium keeps them forever by default; we bound it (agent config clustermesh.serviceWithdrawalMs).
import type { RemoteStatus } from '../../clustermesh/remote/index.ts';
import type { ServiceTable } from '../services/table.ts';
import type { Backend } from '../services/types.ts';

export const DEFAULT_SERVICE_WITHDRAWAL_MS = 5 * 60_000;

type Table = Pick<
  ServiceTable,
  'upsertRemoteBackends' | 'deleteRemoteBackends' | 'deleteRemoteCluster'
>;

/**
 * Sits between the mesh sink and the service table: remembers what each remote shares (so a
 * withdrawn cluster can be restored without a relist) and withholds withdrawn clusters.
 */
export class RemoteServices {
  /** cluster -> "ns/name" -> backends as last received */
  private readonly shared = new Map<string, Map<string, Backend[]>>();
  private readonly withdrawn = new Set<string>();

  constructor(private readonly table: Table) {}

  upsert(cluster: string, namespace: string, name: string, backends: Backend[]): void {
    this.ofCluster(cluster).set(`${namespace}/${name}`, backends);
    if (!this.withdrawn.has(cluster))
      this.table.upsertRemoteBackends(cluster, namespace, name, backends);
  }

  delete(cluster: string, namespace: string, name: string): void {
    this.shared.get(cluster)?.delete(`${namespace}/${name}`);
    if (!this.withdrawn.has(cluster)) this.table.deleteRemoteBackends(cluster, namespace, name);
  }

  withdraw(cluster: string): void {
    if (this.withdrawn.has(cluster)) return;
    this.withdrawn.add(cluster);
    this.table.deleteRemoteCluster(cluster);
  }

  restore(cluster: string): void {
    if (!this.withdrawn.delete(cluster)) return;
    for (const [k, backends] of this.shared.get(cluster) ?? []) {
      const [namespace = '', name = ''] = k.split('/');
      this.table.upsertRemoteBackends(cluster, namespace, name, backends);
    }
  }

  withdrawnClusters(): string[] {
    return [...this.withdrawn].sort();
  }

  private ofCluster(cluster: string): Map<string, Backend[]> {
    let m = this.shared.get(cluster);
    if (!m) this.shared.set(cluster, (m = new Map()));
    return m;
  }
}

/**
 * Decides from the remotes' status when to withdraw and restore. `observe` is called
 * periodically (and is cheap); a remote counts as down from the first observation that it is
 * not connected.
 */
export class WithdrawalClock {
  private readonly downSince = new Map<string, number>();

  constructor(
    private readonly services: Pick<RemoteServices, 'withdraw' | 'restore'>,
    private readonly afterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  observe(remotes: Array<Pick<RemoteStatus, 'cluster' | 'state'>>): void {
    const t = this.now();
    for (const r of remotes) {
      if (r.state === 'connected') {
        this.downSince.delete(r.cluster);
        this.services.restore(r.cluster);
        continue;
      }
      const since = this.downSince.get(r.cluster) ?? t;
      this.downSince.set(r.cluster, since);
      if (t - since >= this.afterMs) this.services.withdraw(r.cluster);
    }
  }
}

/** Runs the clock every `afterMs / 4` (at most each second, at least every 100 ms). */
export function startWithdrawalClock(
  clock: WithdrawalClock,
  afterMs: number,
  remotes: () => RemoteStatus[],
): () => void {
  const period = Math.min(1000, Math.max(100, Math.floor(afterMs / 4)));
  const timer = setInterval(() => clock.observe(remotes()), period);
  timer.unref();
  return () => clearInterval(timer);
}
