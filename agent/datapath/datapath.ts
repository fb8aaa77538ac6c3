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
import { mkdirSync, existsSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../native/index.ts';
import { MapNames, ProgramNames } from './constants.ts';
import { counterMap } from './counter-map.ts';
import { ctMap } from './ct-map.ts';
import { endpointMap } from './endpoint-map.ts';
import { decodeFlowEvent, type FlowEvent } from './events.ts';
import { ipcacheMap } from './ipcache-map.ts';
import { lbMaps } from './lb-maps.ts';
import { MapsDatapath } from './maps-datapath.ts';
import { policyMap } from './policy-map.ts';
import { prefixMap } from './prefix-map.ts';
import { statsMap } from './stats-map.ts';
import {
  TC_HANDLE,
  TC_PRIORITY,
  type AttachResult,
  type Datapath,
  type DatapathOptions,
} from './types.ts';

export type { AttachResult, Datapath, DatapathOptions } from './types.ts';
export { TC_HANDLE, TC_PRIORITY } from './types.ts';

/** statfs f_type of a bpffs (linux/magic.h BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;

const here = dirname(fileURLToPath(import.meta.url));
const defaultObject = (): string => {
  const fromSource = join(here, '../../bpf/build/pod.o');
  return existsSync(fromSource) ? fromSource : join(here, '../../../bpf/build/pod.o');
};

export function openDatapath(opts: DatapathOptions): Datapath {
  const addon = nativeAddon();
  const objectPath = opts.bpfObjectPath ?? defaultObject();
  mkdirSync(opts.pinRoot, { recursive: true });
  if (statfsSync(opts.pinRoot).type !== BPF_FS_MAGIC) {
    throw Object.assign(
      new Error(
        `pin root ${opts.pinRoot} is not on a bpffs: mount one there first (mount -t bpf bpf ${opts.pinRoot})`,
      ),
      { code: 'EDATAPATH_PINROOT' },
    );
  }
  const handle = addon.objectOpen(objectPath, opts.pinRoot);
  try {
    return new LoadedDatapath(handle, opts.pinRoot, opts.netns);
  } catch (e) {
    addon.objectClose(handle);
    throw e;
  }
}

class LoadedDatapath extends MapsDatapath {
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
    super({
      ipcache: ipcacheMap(fd(MapNames.ipcache)),
      endpoints: endpointMap(fd(MapNames.endpoints)),
      policy: policyMap(fd(MapNames.policy)),
      prefixes: prefixMap(fd(MapNames.prefixes)),
      ct: ctMap(fd(MapNames.ct)),
      counters: counterMap(fd(MapNames.counters), addon.possibleCpus()),
      stats: statsMap(fd(MapNames.stats), addon.possibleCpus()),
      lb: lbMaps({
        services: fd(MapNames.lbServices),
        slots: fd(MapNames.lbSlots),
        backends: fd(MapNames.lbBackends),
        ct: fd(MapNames.lbCt),
      }),
    });
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
