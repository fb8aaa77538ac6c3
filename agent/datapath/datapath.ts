// The node datapath: loads bpf/build/pod.o with maps pinned under a bpffs pin root, exposes the
// typed maps, attaches the pod programs to host-side veths, and delivers flow events.
//
//   const dp = openDatapath({ pinRoot: '/run/isthmus/bpf/node1' });
//   dp.endpoints.set('10.1.0.5', { endpointId: 5, ifindex, identity, ingressEnforced, egressEnforced });
//   dp.attachEndpoint({ ifindex });
//   dp.policy.replace(5, entries);
//   const stop = dp.subscribeEvents((e) => ...);
//   dp.removeEndpoint(5);
//   dp.close();   // programs stay attached and maps stay pinned: a restarted agent adopts them
//
// The pod's own node is HOST (identity 1) because the agent writes the node's own IPs into the
// ipcache with identity 1; ingress from identity 1 is always admitted. Enforcement flags live in
// the endpoints rows, so write the endpoint row before (or with) its first applyEndpointPolicy.
import { mkdirSync, existsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../native/index.ts';
import type { EndpointPolicy } from '../policy/entry.ts';
import { MapNames, ProgramNames } from './constants.ts';
import { counterMap, type CounterMap } from './counter-map.ts';
import { ctMap, type CtMap } from './ct-map.ts';
import { endpointMap, type EndpointMap } from './endpoint-map.ts';
import { decodeFlowEvent, type FlowEvent } from './events.ts';
import { ipcacheMap, type IpcacheMap } from './ipcache-map.ts';
import { policyMap, type PolicyMap } from './policy-map.ts';
import { prefixMap, type PrefixMap } from './prefix-map.ts';

export interface DatapathOptions {
  /** a directory on a bpffs; maps are created here or reused from their pins */
  pinRoot: string;
  /** defaults to bpf/build/pod.o of this checkout */
  bpfObjectPath?: string;
  /** network namespace of the pod veths (e.g. /run/netns/NODE); default: the caller's own */
  netns?: string;
}

/** tc filter slot of the pod programs; replacing at the same slot is atomic. */
export const TC_HANDLE = 1;
export const TC_PRIORITY = 1;

export interface AttachResult {
  ingressProgramId: number;
  egressProgramId: number;
}

export interface Datapath {
  readonly ipcache: IpcacheMap;
  readonly endpoints: EndpointMap;
  readonly policy: PolicyMap;
  readonly prefixes: PrefixMap;
  readonly ct: CtMap;
  readonly counters: CounterMap;
  /** kernel map ids by map name (unchanged across restarts when pins were adopted) */
  mapIds(): Record<string, number>;
  /** program ids of this load */
  programIds(): { fromPod: number; toPod: number };
  /** Attaches from_pod (tc ingress) and to_pod (tc egress) on the host-side veth, replacing any
   * earlier version atomically. */
  attachEndpoint(opts: { ifindex: number }): AttachResult;
  /** Removes the programs; false when none was attached (idempotent). */
  detachEndpoint(opts: { ifindex: number }): boolean;
  /** Program ids attached on an interface now (0 = none). */
  attached(opts: { ifindex: number }): AttachResult;
  /** Removes everything of an endpoint: programs on its interfaces (if still there), its
   * endpoints rows, policy and prefix entries, connections and counters. Idempotent. */
  removeEndpoint(endpointId: number): void;
  /** Writes an endpoint's whole policy: entries first, then enforcement flags (when enabling), so
   * the endpoint is never enforced against a partial rule set. */
  applyEndpointPolicy(endpointId: number, policy: EndpointPolicy): void;
  /** Whether the maps hold exactly this policy for the endpoint (entries, prefixes, flags), read
   * back from the kernel. */
  endpointPolicyConverged(endpointId: number, policy: EndpointPolicy): boolean;
  /** Flow events, delivered from the event loop; returns the unsubscribe function. */
  subscribeEvents(cb: (event: FlowEvent) => void, opts?: { keepAlive?: boolean }): () => void;
  /** Delivers pending events now (tests; the event loop does it otherwise). */
  drainEvents(): void;
  /** Closes fds and consumers; pins and attached programs stay. */
  close(): void;
}

const here = dirname(fileURLToPath(import.meta.url));
const defaultObject = (): string => {
  const fromSource = join(here, '../../bpf/build/pod.o');
  return existsSync(fromSource) ? fromSource : join(here, '../../../bpf/build/pod.o');
};

export function openDatapath(opts: DatapathOptions): Datapath {
  const addon = nativeAddon();
  const objectPath = opts.bpfObjectPath ?? defaultObject();
  mkdirSync(opts.pinRoot, { recursive: true });
  const handle = addon.objectOpen(objectPath, opts.pinRoot);
  try {
    return new LoadedDatapath(handle, opts.pinRoot, opts.netns);
  } catch (e) {
    addon.objectClose(handle);
    throw e;
  }
}

class LoadedDatapath implements Datapath {
  readonly ipcache: IpcacheMap;
  readonly endpoints: EndpointMap;
  readonly policy: PolicyMap;
  readonly prefixes: PrefixMap;
  readonly ct: CtMap;
  readonly counters: CounterMap;
  private readonly fromPodFd: number;
  private readonly toPodFd: number;
  private readonly eventsFd: number;
  private readonly consumers = new Set<number>();
  private closed = false;

  constructor(
    private readonly handle: number,
    pinRoot: string,
    private readonly netns?: string,
  ) {
    const addon = nativeAddon();
    const fd = (name: string): number => addon.mapFd(handle, name);
    this.ipcache = ipcacheMap(fd(MapNames.ipcache));
    this.endpoints = endpointMap(fd(MapNames.endpoints));
    this.policy = policyMap(fd(MapNames.policy));
    this.prefixes = prefixMap(fd(MapNames.prefixes));
    this.ct = ctMap(fd(MapNames.ct));
    this.counters = counterMap(fd(MapNames.counters), addon.possibleCpus());
    this.eventsFd = fd(MapNames.events);
    this.fromPodFd = addon.programFd(handle, ProgramNames.fromPod);
    this.toPodFd = addon.programFd(handle, ProgramNames.toPod);
    pinPrograms(pinRoot, { from_pod: this.fromPodFd, to_pod: this.toPodFd });
  }

  mapIds(): Record<string, number> {
    const addon = nativeAddon();
    return Object.fromEntries(
      Object.values(MapNames).map((n) => [n, addon.mapInfo(addon.mapFd(this.handle, n)).id]),
    );
  }

  programIds(): { fromPod: number; toPod: number } {
    const addon = nativeAddon();
    return { fromPod: addon.progInfo(this.fromPodFd).id, toPod: addon.progInfo(this.toPodFd).id };
  }

  attachEndpoint({ ifindex }: { ifindex: number }): AttachResult {
    const addon = nativeAddon();
    addon.tcEnsureClsact(ifindex, this.netns);
    return {
      ingressProgramId: addon.tcAttach(
        ifindex,
        'ingress',
        this.fromPodFd,
        TC_HANDLE,
        TC_PRIORITY,
        true,
        this.netns,
      ),
      egressProgramId: addon.tcAttach(
        ifindex,
        'egress',
        this.toPodFd,
        TC_HANDLE,
        TC_PRIORITY,
        true,
        this.netns,
      ),
    };
  }

  detachEndpoint({ ifindex }: { ifindex: number }): boolean {
    const addon = nativeAddon();
    const a = addon.tcDetach(ifindex, 'ingress', TC_HANDLE, TC_PRIORITY, this.netns);
    const b = addon.tcDetach(ifindex, 'egress', TC_HANDLE, TC_PRIORITY, this.netns);
    return a || b;
  }

  attached({ ifindex }: { ifindex: number }): AttachResult {
    const addon = nativeAddon();
    return {
      ingressProgramId: addon.tcQuery(ifindex, 'ingress', TC_HANDLE, TC_PRIORITY, this.netns),
      egressProgramId: addon.tcQuery(ifindex, 'egress', TC_HANDLE, TC_PRIORITY, this.netns),
    };
  }

  removeEndpoint(endpointId: number): void {
    const rows = [...this.endpoints.entries()].filter(([, v]) => v.endpointId === endpointId);
    for (const ifindex of new Set(rows.map(([, v]) => v.ifindex))) this.detachEndpoint({ ifindex });
    this.endpoints.deleteMany(rows.map(([ip]) => ip));
    this.policy.replace(endpointId, []);
    this.prefixes.replace(endpointId, []);
    this.ct.flushEndpoint(endpointId);
    this.counters.delete(endpointId);
  }

  applyEndpointPolicy(endpointId: number, policy: EndpointPolicy): void {
    const mine = [...this.endpoints.entries()].filter(([, v]) => v.endpointId === endpointId);
    const setFlags = (): void => {
      for (const [ip, v] of mine)
        this.endpoints.set(ip, {
          ...v,
          ingressEnforced: policy.ingressEnforced,
          egressEnforced: policy.egressEnforced,
        });
    };
    const loosening = mine.some(
      ([, v]) =>
        (v.ingressEnforced && !policy.ingressEnforced) ||
        (v.egressEnforced && !policy.egressEnforced),
    );
    if (loosening) setFlags();
    this.prefixes.replace(endpointId, policy.prefixes);
    this.policy.replace(endpointId, policy.entries);
    if (!loosening) setFlags();
  }

  endpointPolicyConverged(endpointId: number, policy: EndpointPolicy): boolean {
    const rows = [...this.endpoints.values()].filter((v) => v.endpointId === endpointId);
    const flagsOk = rows.every(
      (v) =>
        v.ingressEnforced === policy.ingressEnforced && v.egressEnforced === policy.egressEnforced,
    );
    const p = this.policy.delta(endpointId, policy.entries);
    const x = this.prefixes.delta(endpointId, policy.prefixes);
    return flagsOk && p.add.length + p.remove.length + x.add.length + x.remove.length === 0;
  }

  subscribeEvents(cb: (event: FlowEvent) => void, opts: { keepAlive?: boolean } = {}): () => void {
    const addon = nativeAddon();
    const id = addon.ringbufOpen(
      this.eventsFd,
      (records) => {
        for (const r of records) cb(decodeFlowEvent(r));
      },
      opts.keepAlive ?? false,
    );
    this.consumers.add(id);
    return () => {
      if (this.consumers.delete(id)) addon.ringbufClose(id);
    };
  }

  drainEvents(): void {
    for (const id of this.consumers) nativeAddon().ringbufDrain(id);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const addon = nativeAddon();
    for (const id of this.consumers) addon.ringbufClose(id);
    this.consumers.clear();
    addon.objectClose(this.handle);
  }
}

/** Pins the loaded programs under <pinRoot>/progs, replacing earlier pins, so they outlive us. */
function pinPrograms(pinRoot: string, progs: Record<string, number>): void {
  const dir = join(pinRoot, 'progs');
  mkdirSync(dir, { recursive: true });
  const addon = nativeAddon();
  for (const [name, fd] of Object.entries(progs)) {
    const path = join(dir, name);
    if (existsSync(path)) unlinkSync(path);
    addon.objPin(fd, path);
  }
}
