// Wires the service table for the agent: Services and EndpointSlices (watched by agent/k8s) into
// the ServiceTable, and the table into the load-balancing maps through the LbReconciler —
// coalesced after changes and repeated by a periodic full pass (repairs drift).
import type { LbMaps } from '../datapath/lb-maps.ts';
import type { EndpointSlice, Service } from '../k8s/resources.ts';
import { LbReconciler, type LbReconcileResult } from './lb-reconciler.ts';
import { ServiceTable } from './table.ts';
import type { Backend, Protocol, ServicePort, ServiceSpec, ServiceView } from './types.ts';

const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

type Log = (msg: string, fields?: Record<string, unknown>) => void;

const protocolOf = (p: unknown): Protocol | undefined =>
  p === undefined || p === 'TCP' ? 'TCP' : p === 'UDP' ? 'UDP' : undefined;

/** A Service as the table needs it; undefined when it has no ClusterIP (headless, ExternalName). */
export function serviceSpecOf(svc: Service): ServiceSpec | undefined {
  const spec = (svc.spec ?? {}) as {
    type?: string;
    clusterIP?: string;
    clusterIPs?: string[];
    ports?: Array<{ name?: string; port: number; protocol?: string }>;
  };
  if (spec.type === 'ExternalName') return undefined;
  const ips = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter(
    (ip) => ip && ip !== 'None' && !ip.includes(':'),
  );
  if (ips.length === 0) return undefined;
  const ports: ServicePort[] = [];
  for (const p of spec.ports ?? []) {
    const protocol = protocolOf(p.protocol);
    if (protocol) ports.push({ name: p.name ?? '', port: p.port, protocol });
  }
  return {
    namespace: svc.metadata.namespace ?? 'default',
    name: svc.metadata.name,
    clusterIPs: ips,
    ports,
    annotations: svc.metadata.annotations ?? {},
  };
}

/** The backends one EndpointSlice lists (IPv4 only). */
export function sliceBackends(slice: EndpointSlice): Backend[] {
  if (slice.addressType && slice.addressType !== 'IPv4') return [];
  const ports: Backend['ports'] = {};
  for (const raw of (slice.ports ?? []) as Array<{
    name?: string;
    port?: number;
    protocol?: string;
  }>) {
    const protocol = protocolOf(raw.protocol);
    if (protocol && raw.port) ports[raw.name ?? ''] = { port: raw.port, protocol };
  }
  const out: Backend[] = [];
  for (const raw of (slice.endpoints ?? []) as Array<{
    addresses?: string[];
    conditions?: { ready?: boolean };
    targetRef?: { name?: string };
  }>) {
    const addr = raw.addresses?.[0];
    if (!addr) continue;
    out.push({
      addr,
      ports,
      ready: raw.conditions?.ready !== false, // nil means ready (discovery.k8s.io/v1)
      ...(raw.targetRef?.name && { podName: raw.targetRef.name }),
    });
  }
  return out;
}

export class ServiceSync {
  readonly table = new ServiceTable();
  private readonly lb: LbReconciler;
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private last: { at: string; result?: LbReconcileResult; error?: string } | undefined;

  constructor(
    maps: LbMaps,
    private readonly opts: { intervalMs: number; log: Log },
  ) {
    this.lb = new LbReconciler(maps);
  }

  onService(key: string, svc: Service | undefined): void {
    const spec = svc && serviceSpecOf(svc);
    const [ns, name] = key.split('/') as [string, string];
    if (spec) this.table.upsertService(spec);
    else this.table.deleteService(ns, name);
  }

  onSlice(key: string, slice: EndpointSlice | undefined): void {
    const svcName = slice?.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!slice || !svcName) return this.table.deleteSlice(key);
    this.table.upsertSlice(
      key,
      slice.metadata.namespace ?? 'default',
      svcName,
      sliceBackends(slice),
    );
  }

  /** First full pass now, then coalesced passes after changes and a periodic one. */
  start(): void {
    this.reconcile();
    this.table.onChange(() => this.schedule());
    this.timer = setInterval(() => this.reconcile(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }

  views(): ServiceView[] {
    return this.table.views();
  }

  lastPass(): typeof this.last {
    return this.last;
  }

  /** Writes the table into the maps now; returns what changed. */
  reconcile(): LbReconcileResult | undefined {
    try {
      const result = this.lb.reconcile(this.table.frontends());
      this.last = { at: new Date().toISOString(), result };
      return result;
    } catch (err) {
      this.last = { at: new Date().toISOString(), error: String(err) };
      this.opts.log('service maps write failed: retrying on the next pass', { error: String(err) });
      return undefined;
    }
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.reconcile();
    }, 20);
    this.pending.unref();
  }
}
