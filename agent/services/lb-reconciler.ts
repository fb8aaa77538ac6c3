// Writes frontends into the load-balancing maps, idempotently. Service ids (per frontend) and
// backend ids (per address:port) are stable: adopted from the maps on start and kept while in
// use, so connections pinned to a backend id keep it across updates. Order per frontend:
// backends, then slots, then the slot count (grow) — or count first, then extra slots (shrink),
// so the datapath never reads a slot past the count or a slot naming a missing backend.
import type { LbMaps } from '../datapath/lb-maps.ts';
import type { FrontendState, Protocol } from './types.ts';

const PROTO: Record<Protocol, number> = { TCP: 6, UDP: 17 };
const MAX_SLOTS = 0xffff;

const frontendKey = (addr: string, port: number, protocol: number): string =>
  `${addr}:${port}/${protocol}`;
const backendKey = (addr: string, port: number): string => `${addr}:${port}`;

export interface LbReconcileResult {
  frontends: number;
  backends: number;
  writes: number;
  deletes: number;
}

export class LbReconciler {
  private readonly serviceIds = new Map<string, number>();
  private readonly backendIds = new Map<string, number>();
  private nextServiceId = 1;
  private nextBackendId = 1;

  constructor(private readonly maps: LbMaps) {
    this.adopt();
  }

  /** Makes the maps hold exactly `desired` (a full pass: also removes what is not desired). */
  reconcile(desired: readonly FrontendState[]): LbReconcileResult {
    const r: LbReconcileResult = { frontends: desired.length, backends: 0, writes: 0, deletes: 0 };
    const wantedBackends = new Set<string>();
    const wantedFrontends = new Set<string>();
    for (const f of desired) {
      for (const b of f.backends) wantedBackends.add(backendKey(b.addr, b.port));
      wantedFrontends.add(frontendKey(f.addr, f.port, PROTO[f.protocol]));
    }
    r.backends = wantedBackends.size;
    for (const f of desired) this.writeFrontend(f, r);
    this.pruneFrontends(wantedFrontends, r);
    this.pruneBackends(wantedBackends, r);
    return r;
  }

  /** Backend id of address:port, if it has one (tests, status). */
  backendId(addr: string, port: number): number | undefined {
    return this.backendIds.get(backendKey(addr, port));
  }

  serviceId(addr: string, port: number, protocol: Protocol): number | undefined {
    return this.serviceIds.get(frontendKey(addr, port, PROTO[protocol]));
  }

  private adopt(): void {
    for (const [k, v] of this.maps.services.entries()) {
      this.serviceIds.set(frontendKey(k.addr, k.port, k.protocol), v.serviceId);
      this.nextServiceId = Math.max(this.nextServiceId, v.serviceId + 1);
    }
    for (const [id, b] of this.maps.backends.entries()) {
      this.backendIds.set(backendKey(b.addr, b.port), id);
      this.nextBackendId = Math.max(this.nextBackendId, id + 1);
    }
  }

  private writeFrontend(f: FrontendState, r: LbReconcileResult): void {
    const key = { addr: f.addr, port: f.port, protocol: PROTO[f.protocol] };
    const fk = frontendKey(f.addr, f.port, key.protocol);
    let serviceId = this.serviceIds.get(fk);
    if (serviceId === undefined) {
      serviceId = this.nextServiceId++;
      this.serviceIds.set(fk, serviceId);
    }
    const unique = [...new Map(f.backends.map((b) => [backendKey(b.addr, b.port), b])).values()]
      .sort((a, b) => backendKey(a.addr, a.port).localeCompare(backendKey(b.addr, b.port)))
      .slice(0, MAX_SLOTS);
    const ids = unique.map((b) => this.ensureBackend(b.addr, b.port, r));
    const current = this.maps.services.get(key);
    const oldCount = current?.serviceId === serviceId ? current.count : 0;
    for (let slot = 0; slot < ids.length; slot++) {
      const id = ids[slot]!;
      if (this.maps.slots.get({ serviceId, slot }) !== id) {
        this.maps.slots.set({ serviceId, slot }, id);
        r.writes++;
      }
    }
    if (!current || current.serviceId !== serviceId || current.count !== ids.length) {
      this.maps.services.set(key, { serviceId, count: ids.length, flags: 0 });
      r.writes++;
    }
    for (let slot = ids.length; slot < oldCount; slot++)
      if (this.maps.slots.delete({ serviceId, slot })) r.deletes++;
  }

  private ensureBackend(addr: string, port: number, r: LbReconcileResult): number {
    const bk = backendKey(addr, port);
    let id = this.backendIds.get(bk);
    if (id === undefined) {
      id = this.nextBackendId++;
      this.backendIds.set(bk, id);
    }
    const have = this.maps.backends.get(id);
    if (!have || have.addr !== addr || have.port !== port) {
      this.maps.backends.set(id, { addr, port, flags: 0 });
      r.writes++;
    }
    return id;
  }

  private pruneFrontends(wanted: Set<string>, r: LbReconcileResult): void {
    for (const [k, v] of [...this.maps.services.entries()]) {
      const fk = frontendKey(k.addr, k.port, k.protocol);
      if (wanted.has(fk)) continue;
      this.maps.services.delete(k);
      r.deletes++;
      for (let slot = 0; slot < v.count; slot++)
        if (this.maps.slots.delete({ serviceId: v.serviceId, slot })) r.deletes++;
      this.serviceIds.delete(fk);
    }
  }

  /** A backend no frontend uses any more is removed: connections pinned to it re-balance. */
  private pruneBackends(wanted: Set<string>, r: LbReconcileResult): void {
    for (const [id, b] of [...this.maps.backends.entries()]) {
      const bk = backendKey(b.addr, b.port);
      if (wanted.has(bk) && this.backendIds.get(bk) === id) continue;
      this.maps.backends.delete(id);
      r.deletes++;
      if (this.backendIds.get(bk) === id) this.backendIds.delete(bk);
    }
  }
}
