// What every kernel-backed Datapath shares, whether it loaded the object itself (datapath.ts, the
// agent) or opened a node's pins (integration/e2e/node-maps.ts, tests looking at a running agent):
// the typed maps over map fds, tc attach/detach/query of the pod programs, and ring-buffer
// consumers of flow events. Subclasses say where map and program fds come from and who closes them.
import { nativeAddon } from '../native/index.ts';
import { MapNames } from './constants.ts';
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
import { TC_HANDLE, TC_PRIORITY, type AttachResult } from './types.ts';

export type PodProgram = 'from_pod' | 'to_pod';

export abstract class KernelDatapath extends MapsDatapath {
  private readonly eventsFd: number;
  private readonly consumers = new Set<number>();

  /**
   * @param mapFd the fd of a map by its pinned name (the subclass owns and closes these fds)
   * @param netns network namespace path of the pod veths; undefined: the caller's own
   */
  protected constructor(
    mapFd: (name: string) => number,
    private readonly netns: string | undefined,
  ) {
    const cpus = nativeAddon().possibleCpus();
    super({
      ipcache: ipcacheMap(mapFd(MapNames.ipcache)),
      endpoints: endpointMap(mapFd(MapNames.endpoints)),
      policy: policyMap(mapFd(MapNames.policy)),
      prefixes: prefixMap(mapFd(MapNames.prefixes)),
      ct: ctMap(mapFd(MapNames.ct)),
      counters: counterMap(mapFd(MapNames.counters), cpus),
      stats: statsMap(mapFd(MapNames.stats), cpus),
      lb: lbMaps({
        services: mapFd(MapNames.lbServices),
        slots: mapFd(MapNames.lbSlots),
        backends: mapFd(MapNames.lbBackends),
        ct: mapFd(MapNames.lbCt),
      }),
    });
    this.eventsFd = mapFd(MapNames.events);
  }

  /** Runs `use` with an fd of the pod program to attach (valid only during the call). */
  protected abstract withProgram<T>(name: PodProgram, use: (fd: number) => T): T;

  attachEndpoint({ ifindex }: { ifindex: number }): AttachResult {
    const addon = nativeAddon();
    addon.tcEnsureClsact(ifindex, this.netns);
    const attach = (point: 'ingress' | 'egress', name: PodProgram): number =>
      this.withProgram(name, (prog) =>
        addon.tcAttach(ifindex, point, prog, TC_HANDLE, TC_PRIORITY, true, this.netns),
      );
    return {
      ingressProgramId: attach('ingress', 'from_pod'),
      egressProgramId: attach('egress', 'to_pod'),
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

  /** Ends every event consumer; subclasses call it from close() before closing their fds. */
  protected closeConsumers(): void {
    const addon = nativeAddon();
    for (const id of this.consumers) addon.ringbufClose(id);
    this.consumers.clear();
  }
}
