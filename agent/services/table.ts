// The service table: local Services and their EndpointSlices, plus remote backends fed by the
// mesh (upsertRemoteBackends / deleteRemoteBackends), turned into what each frontend uses under
// its affinity. Plain data in, plain data out; the LbReconciler writes the result to the maps.
import { globalSettings, selectBackends } from './affinity.ts';
import type {
  Backend,
  FrontendState,
  Protocol,
  ServicePort,
  ServiceSpec,
  ServiceView,
} from './types.ts';

/** One EndpointSlice's contribution (discovery.k8s.io/v1), already parsed. */
export interface SliceBackends {
  service: string;
  backends: Backend[];
}

const key = (ns: string, name: string): string => `${ns}/${name}`;

export class ServiceTable {
  private readonly services = new Map<string, ServiceSpec>();
  /** slice key (ns/sliceName) -> its backends */
  private readonly slices = new Map<string, { service: string; backends: Backend[] }>();
  /** ns/name -> cluster -> backends */
  private readonly remote = new Map<string, Map<string, Backend[]>>();
  private readonly listeners = new Set<() => void>();
  private revision = 0;

  /** Called after every change (the agent schedules a reconcile). */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => void this.listeners.delete(cb);
  }

  get version(): number {
    return this.revision;
  }

  upsertService(spec: ServiceSpec): void {
    this.services.set(key(spec.namespace, spec.name), spec);
    this.changed();
  }

  deleteService(namespace: string, name: string): void {
    if (this.services.delete(key(namespace, name))) this.changed();
  }

  /** sliceKey = ns/sliceName; the slice names its service by its service-name label. */
  upsertSlice(sliceKey: string, namespace: string, serviceName: string, backends: Backend[]): void {
    this.slices.set(sliceKey, { service: key(namespace, serviceName), backends });
    this.changed();
  }

  deleteSlice(sliceKey: string): void {
    if (this.slices.delete(sliceKey)) this.changed();
  }

  /** The backends a remote cluster shares for ns/name (replaces that cluster's earlier set). */
  upsertRemoteBackends(
    cluster: string,
    namespace: string,
    name: string,
    backends: Backend[],
  ): void {
    const k = key(namespace, name);
    const byCluster = this.remote.get(k) ?? new Map<string, Backend[]>();
    byCluster.set(cluster, backends);
    this.remote.set(k, byCluster);
    this.changed();
  }

  deleteRemoteBackends(cluster: string, namespace: string, name: string): void {
    const byCluster = this.remote.get(key(namespace, name));
    if (!byCluster?.delete(cluster)) return;
    if (byCluster.size === 0) this.remote.delete(key(namespace, name));
    this.changed();
  }

  /** Withdraws everything a remote cluster shared (e.g. after its withdrawal time). */
  deleteRemoteCluster(cluster: string): void {
    let any = false;
    for (const [k, byCluster] of this.remote) {
      any = byCluster.delete(cluster) || any;
      if (byCluster.size === 0) this.remote.delete(k);
    }
    if (any) this.changed();
  }

  /** Local ready backends of global shared services, for the mesh to export. */
  exportable(): Array<{ spec: ServiceSpec; backends: Backend[] }> {
    return [...this.services.values()]
      .filter((s) => globalSettings(s.annotations).shared)
      .map((spec) => ({ spec, backends: this.localBackends(key(spec.namespace, spec.name)) }));
  }

  views(): ServiceView[] {
    return [...this.services.values()]
      .sort((a, b) => key(a.namespace, a.name).localeCompare(key(b.namespace, b.name)))
      .map((s) => this.view(s));
  }

  /** Every frontend with the backends affinity selects (ports resolved by service port name). */
  frontends(): FrontendState[] {
    const out: FrontendState[] = [];
    for (const spec of this.services.values()) {
      const k = key(spec.namespace, spec.name);
      const selected = selectBackends(globalSettings(spec.annotations), {
        local: this.localBackends(k),
        remote: this.remote.get(k) ?? new Map(),
      });
      for (const ip of spec.clusterIPs)
        for (const p of spec.ports)
          out.push({
            service: `${k}/${p.name}`,
            addr: ip,
            port: p.port,
            protocol: p.protocol,
            backends: resolvePorts(
              selected.map((s) => s.backend),
              p,
            ),
          });
    }
    return out;
  }

  private view(spec: ServiceSpec): ServiceView {
    const k = key(spec.namespace, spec.name);
    const settings = globalSettings(spec.annotations);
    const local = this.localBackends(k);
    const remote = this.remote.get(k) ?? new Map<string, Backend[]>();
    const inUse = new Set(
      selectBackends(settings, { local, remote }).map((s) => `${s.cluster}|${s.backend.addr}`),
    );
    const tag = (cluster: string, b: Backend) => ({
      ...b,
      cluster,
      inUse: inUse.has(`${cluster}|${b.addr}`),
    });
    return {
      namespace: spec.namespace,
      name: spec.name,
      frontends: spec.clusterIPs.flatMap((addr) =>
        spec.ports.map((p) => ({ addr, port: p.port, protocol: p.protocol, portName: p.name })),
      ),
      settings,
      backends: [
        ...local.map((b) => tag('', b)),
        ...[...remote].flatMap(([c, bs]) => (settings.global ? bs.map((b) => tag(c, b)) : [])),
      ],
    };
  }

  private localBackends(serviceKey: string): Backend[] {
    const byAddr = new Map<string, Backend>();
    for (const s of this.slices.values())
      if (s.service === serviceKey) for (const b of s.backends) byAddr.set(b.addr, b);
    return [...byAddr.values()];
  }

  private changed(): void {
    this.revision++;
    for (const cb of this.listeners) cb();
  }
}

function resolvePorts(
  backends: Backend[],
  p: ServicePort,
): Array<{ addr: string; port: number; protocol?: Protocol }> {
  const out: Array<{ addr: string; port: number }> = [];
  for (const b of backends) {
    const bp = b.ports[p.name];
    if (bp && bp.protocol === p.protocol) out.push({ addr: b.addr, port: bp.port });
  }
  return out;
}
