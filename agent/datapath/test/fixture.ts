// Shared set-up of the datapath privileged tests: a topology, the datapath loaded into its pin
// root, every pod registered as an endpoint with its programs attached, and flow events collected.
import { openDatapath, type Datapath } from '../datapath.ts';
import type { FlowEvent } from '../events.ts';
import { IDENTITY_HOST } from '../constants.ts';
import type { EndpointPolicy } from '../../policy/entry.ts';
import { createTopology, type Pod, type Topology } from './topology.ts';

export interface Fixture {
  topo: Topology;
  dp: Datapath;
  events: FlowEvent[];
}

export const endpointIdOf = (p: Pod): number => 100 + p.index;
export const identityOf = (p: Pod): number => 0x10000 + 1000 + p.index;

export const OPEN: EndpointPolicy = {
  ingressEnforced: false,
  egressEnforced: false,
  entries: [],
  prefixes: [],
};

export async function createFixture(pods: number): Promise<Fixture> {
  const topo = await createTopology(pods);
  const dp = openDatapath({ pinRoot: topo.pinRoot, netns: topo.nodeNetnsPath });
  dp.ipcache.set(`${topo.nodeIp}/32`, { identity: IDENTITY_HOST, encrypt: false });
  for (const p of topo.pods) {
    dp.ipcache.set(`${p.ip}/32`, { identity: identityOf(p), hostIp: topo.nodeIp, encrypt: false });
    dp.endpoints.set(p.ip, {
      endpointId: endpointIdOf(p),
      ifindex: p.ifindex,
      identity: identityOf(p),
      ingressEnforced: false,
      egressEnforced: false,
    });
    dp.attachEndpoint({ ifindex: p.ifindex });
  }
  const events: FlowEvent[] = [];
  dp.subscribeEvents((e) => events.push(e));
  return { topo, dp, events };
}

/** Opens every endpoint, forgets connections and collected events. */
export function resetFixture(f: Fixture): void {
  for (const p of f.topo.pods) {
    f.dp.applyEndpointPolicy(endpointIdOf(p), OPEN);
    f.dp.ct.flushEndpoint(endpointIdOf(p));
  }
  f.dp.drainEvents();
  f.events.length = 0;
}

/** Waits until an event matching pred was delivered (events arrive through the event loop). */
export async function waitForEvent(
  f: Fixture,
  pred: (e: FlowEvent) => boolean,
  timeoutMs = 3000,
): Promise<FlowEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    f.dp.drainEvents();
    const hit = f.events.find(pred);
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error('no matching flow event');
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
