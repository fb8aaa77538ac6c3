// Turns every CiliumEndpoint of the cluster into ipcache rows (pod IP -> identity, host IP, named
// ports), through a key queue on the endpoints watch. When two objects claim one IP (a stale one
// of a dead node, a pod moving) the newest resourceVersion holds it; deleting the loser leaves
// the winner's row alone.
import type { Resource } from './resource.ts';
import type { KeyQueue } from './key-queue.ts';
import type { CiliumEndpoint, NamedPort } from './resources.ts';

export interface IpcacheRow {
  ip: string;
  identity: number;
  hostIP: string | undefined;
  namespace: string;
  podName: string;
  namedPorts: NamedPort[];
  /** Store key of the CiliumEndpoint the row came from. */
  source: string;
  resourceVersion: number;
}

export type IpcacheListener = (ip: string, row: IpcacheRow | undefined) => void;

/** Rows an endpoint object stands for; invalid or identity-less objects give none. */
export function rowsOf(key: string, cep: CiliumEndpoint): IpcacheRow[] {
  const s = cep.status;
  const id = s?.identity?.id;
  if (!s || !Number.isInteger(id) || (id as number) <= 0) return [];
  const rv = Number(cep.metadata.resourceVersion ?? 0);
  const rows: IpcacheRow[] = [];
  for (const pair of s.networking?.addressing ?? []) {
    for (const ip of [pair.ipv4, pair.ipv6]) {
      if (!ip) continue;
      rows.push({
        ip,
        identity: id as number,
        hostIP: s.networking?.node,
        namespace: cep.metadata.namespace ?? '',
        podName: cep.metadata.name,
        namedPorts: s['named-ports'] ?? [],
        source: key,
        resourceVersion: rv,
      });
    }
  }
  return rows;
}

export class EndpointIpcache {
  private readonly rows = new Map<string, IpcacheRow>();
  /** IPs each endpoint object claims, winning or not. */
  private readonly claims = new Map<string, Map<string, IpcacheRow>>();
  /** The same claims by IP: endpoint key -> row. */
  private readonly byIp = new Map<string, Map<string, IpcacheRow>>();
  private readonly listeners = new Set<IpcacheListener>();
  private queue: KeyQueue | undefined;

  constructor(private readonly endpoints: Resource<CiliumEndpoint>) {}

  start(): void {
    this.queue ??= this.endpoints.subscribe((key, cep) => this.apply(key, cep));
  }

  stop(): void {
    this.queue?.stop();
    this.queue = undefined;
  }

  /** Resolves once every endpoint object of the initial list is in the rows. */
  get synced(): Promise<void> {
    if (!this.queue) throw new Error('EndpointIpcache.synced before start()');
    return this.queue.synced;
  }

  onChange(listener: IpcacheListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(ip: string): IpcacheRow | undefined {
    return this.rows.get(ip);
  }

  all(): IpcacheRow[] {
    return [...this.rows.values()];
  }

  /** Level-triggered: make the rows of `key` match the object (undefined: deleted). */
  apply(key: string, cep: CiliumEndpoint | undefined): void {
    const next = new Map((cep ? rowsOf(key, cep) : []).map((r) => [r.ip, r]));
    const prev = this.claims.get(key) ?? new Map<string, IpcacheRow>();
    if (next.size) this.claims.set(key, next);
    else this.claims.delete(key);
    for (const ip of prev.keys()) this.byIp.get(ip)?.delete(key);
    for (const [ip, row] of next) {
      let m = this.byIp.get(ip);
      if (!m) this.byIp.set(ip, (m = new Map()));
      m.set(key, row);
    }
    for (const ip of new Set([...prev.keys(), ...next.keys()])) this.elect(ip);
  }

  /** The newest claim on `ip` wins. */
  private elect(ip: string): void {
    let best: IpcacheRow | undefined;
    const claims = this.byIp.get(ip);
    for (const row of claims?.values() ?? []) {
      if (!best || row.resourceVersion > best.resourceVersion) best = row;
    }
    if (claims?.size === 0) this.byIp.delete(ip);
    const cur = this.rows.get(ip);
    if (best) {
      if (cur && JSON.stringify(cur) === JSON.stringify(best)) return;
      this.rows.set(ip, best);
    } else {
      if (!cur) return;
      this.rows.delete(ip);
    }
    for (const l of this.listeners) l(ip, best);
  }
}
