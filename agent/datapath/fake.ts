// An in-memory Datapath for control-plane unit tests (no root, no kernel): the same typed maps
// and codecs over memory storage (exact keys, no LPM matching, no packets), attachments recorded
// per ifindex, and flow events injected with emit().
import type { MapInfo } from '../native/index.ts';
import { MapNames } from './constants.ts';
import { counterMap } from './counter-map.ts';
import { ctCodec, ctMap } from './ct-map.ts';
import { endpointCodec, endpointMap } from './endpoint-map.ts';
import type { FlowEvent } from './events.ts';
import { ipcacheCodec, ipcacheMap } from './ipcache-map.ts';
import { lbBackendCodec, lbCtCodec, lbMaps, lbServiceCodec, lbSlotCodec } from './lb-maps.ts';
import { memoryBackend } from './map-backend.ts';
import { MapsDatapath } from './maps-datapath.ts';
import { policyCodec, policyMap } from './policy-map.ts';
import { prefixCodec, prefixMap } from './prefix-map.ts';
import { statsMap } from './stats-map.ts';
import type { AttachResult } from './types.ts';

const FAKE_CPUS = 2;

function memory(id: number, name: string, keySize: number, valueSize: number, maxEntries: number) {
  const info: MapInfo = { id, type: 0, keySize, valueSize, maxEntries, flags: 0, name };
  return memoryBackend(info);
}

export class FakeDatapath extends MapsDatapath {
  /** ifindex -> attached program ids */
  readonly attachments = new Map<number, AttachResult>();
  private readonly subscribers = new Set<(e: FlowEvent) => void>();
  private generation = 0;
  closed = false;

  constructor() {
    super({
      ipcache: ipcacheMap(
        memory(1, MapNames.ipcache, ipcacheCodec.keySize, ipcacheCodec.valueSize, 262144),
      ),
      endpoints: endpointMap(
        memory(2, MapNames.endpoints, endpointCodec.keySize, endpointCodec.valueSize, 65536),
      ),
      policy: policyMap(
        memory(3, MapNames.policy, policyCodec.keySize, policyCodec.valueSize, 262144),
      ),
      prefixes: prefixMap(
        memory(4, MapNames.prefixes, prefixCodec.keySize, prefixCodec.valueSize, 65536),
      ),
      ct: ctMap(memory(5, MapNames.ct, ctCodec.keySize, ctCodec.valueSize, 262144)),
      counters: counterMap(memory(7, MapNames.counters, 4, 64 * FAKE_CPUS, 65536), FAKE_CPUS),
      stats: statsMap(memory(8, MapNames.stats, 4, 8 * FAKE_CPUS, 4), FAKE_CPUS),
      lb: lbMaps({
        services: memory(9, MapNames.lbServices, lbServiceCodec.keySize, 8, 65536),
        slots: memory(10, MapNames.lbSlots, lbSlotCodec.keySize, 4, 524288),
        backends: memory(11, MapNames.lbBackends, 4, lbBackendCodec.valueSize, 524288),
        ct: memory(12, MapNames.lbCt, lbCtCodec.keySize, lbCtCodec.valueSize, 262144),
      }),
    });
  }

  mapIds(): Record<string, number> {
    return Object.fromEntries(
      [
        this.ipcache,
        this.endpoints,
        this.policy,
        this.prefixes,
        this.ct,
        this.counters,
        this.stats,
      ].map((m) => [m.info().name, m.info().id]),
    );
  }

  programIds(): { fromPod: number; toPod: number } {
    return { fromPod: 1000 + this.generation * 2, toPod: 1001 + this.generation * 2 };
  }

  attachEndpoint({ ifindex }: { ifindex: number }): AttachResult {
    const ids = this.programIds();
    const result = { ingressProgramId: ids.fromPod, egressProgramId: ids.toPod };
    this.attachments.set(ifindex, result);
    return result;
  }

  detachEndpoint({ ifindex }: { ifindex: number }): boolean {
    return this.attachments.delete(ifindex);
  }

  attached({ ifindex }: { ifindex: number }): AttachResult {
    return this.attachments.get(ifindex) ?? { ingressProgramId: 0, egressProgramId: 0 };
  }

  /** Simulates a new program load (as a restarted agent would do). */
  reload(): void {
    this.generation++;
  }

  subscribeEvents(cb: (event: FlowEvent) => void): () => void {
    this.subscribers.add(cb);
    return () => void this.subscribers.delete(cb);
  }

  /** Delivers an event to every subscriber, as the ring buffer would. */
  emit(event: FlowEvent): void {
    for (const cb of this.subscribers) cb(event);
  }

  drainEvents(): void {}

  close(): void {
    this.closed = true;
    this.subscribers.clear();
  }
}

export const createFakeDatapath = (): FakeDatapath => new FakeDatapath();
