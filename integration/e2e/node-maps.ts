// A lab node's kernel datapath as seen from the test process: the node agent's pinned maps and
// programs, opened from their pins on the node's bpffs. Nothing is loaded and nothing is re-pinned,
// so opening it never changes what the agent runs (a fresh openDatapath would load and pin new
// programs). Until the policy engine is wired into the agent, tests write identities and policy
// entries through these typed wrappers.
import { join } from 'node:path';
import { MapNames, ProgramNames } from '../../agent/datapath/constants.ts';
import { counterMap } from '../../agent/datapath/counter-map.ts';
import { ctMap } from '../../agent/datapath/ct-map.ts';
import { endpointMap } from '../../agent/datapath/endpoint-map.ts';
import { decodeFlowEvent, type FlowEvent } from '../../agent/datapath/events.ts';
import { lbMaps } from '../../agent/datapath/lb-maps.ts';
import { ipcacheMap } from '../../agent/datapath/ipcache-map.ts';
import { MapsDatapath } from '../../agent/datapath/maps-datapath.ts';
import { policyMap } from '../../agent/datapath/policy-map.ts';
import { prefixMap } from '../../agent/datapath/prefix-map.ts';
import { statsMap } from '../../agent/datapath/stats-map.ts';
import { TC_HANDLE, TC_PRIORITY, type AttachResult } from '../../agent/datapath/types.ts';
import { nativeAddon } from '../../agent/native/index.ts';
import type { NodePlan } from '../lab/config.ts';
import { netnsPath } from '../lab/netns.ts';

/** Where the node agent pins its programs (agent/datapath/datapath.ts pinPrograms). */
export const programPin = (node: NodePlan, name: 'from_pod' | 'to_pod'): string =>
  join(node.bpffs, 'progs', name);

/** Kernel ids of the node's pinned maps, by map name (read from the pins, not from a load). */
export function pinnedMapIds(node: NodePlan): Record<string, number> {
  const addon = nativeAddon();
  return Object.fromEntries(
    Object.values(MapNames).map((name) => {
      const fd = addon.objGet(join(node.bpffs, name));
      try {
        return [name, addon.mapInfo(fd).id];
      } finally {
        addon.closeFd(fd);
      }
    }),
  );
}

/** Kernel ids of the programs pinned under <bpffs>/progs. */
export function pinnedProgramIds(node: NodePlan): { fromPod: number; toPod: number } {
  const addon = nativeAddon();
  const idOf = (name: 'from_pod' | 'to_pod'): number => {
    const fd = addon.objGet(programPin(node, name));
    try {
      return addon.progInfo(fd).id;
    } finally {
      addon.closeFd(fd);
    }
  };
  return { fromPod: idOf(ProgramNames.fromPod), toPod: idOf(ProgramNames.toPod) };
}

export class NodeMaps extends MapsDatapath {
  private readonly fds: number[];
  private readonly eventsFd: number;
  private readonly consumers = new Set<number>();
  private readonly netns: string;

  constructor(readonly node: NodePlan) {
    const addon = nativeAddon();
    const fds: number[] = [];
    const fd = (name: string): number => {
      const opened = addon.objGet(join(node.bpffs, name));
      fds.push(opened);
      return opened;
    };
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
    this.fds = fds;
    this.netns = netnsPath(node.netns);
  }

  mapIds(): Record<string, number> {
    return pinnedMapIds(this.node);
  }

  programIds(): { fromPod: number; toPod: number } {
    return pinnedProgramIds(this.node);
  }

  /** Attaches the node's pinned programs (what the agent runs) on a host veth of the node. */
  attachEndpoint({ ifindex }: { ifindex: number }): AttachResult {
    const addon = nativeAddon();
    addon.tcEnsureClsact(ifindex, this.netns);
    const attach = (point: 'ingress' | 'egress', pin: string): number => {
      const prog = addon.objGet(pin);
      try {
        return addon.tcAttach(ifindex, point, prog, TC_HANDLE, TC_PRIORITY, true, this.netns);
      } finally {
        addon.closeFd(prog);
      }
    };
    return {
      ingressProgramId: attach('ingress', programPin(this.node, 'from_pod')),
      egressProgramId: attach('egress', programPin(this.node, 'to_pod')),
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

  /** The agent does not consume the ring buffer yet, so the test may (one consumer at a time). */
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
    const addon = nativeAddon();
    for (const id of this.consumers) addon.ringbufClose(id);
    this.consumers.clear();
    for (const fd of this.fds.splice(0)) addon.closeFd(fd);
  }
}

export const openNodeMaps = (node: NodePlan): NodeMaps => new NodeMaps(node);
