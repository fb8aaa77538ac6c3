// The Datapath contract: what the agent's reconcilers (endpoints, policy, ipcache) call. Two
// implementations: openDatapath (datapath.ts, the kernel) and createFakeDatapath (fake.ts, memory).
import type { EndpointPolicy } from '../policy/entry.ts';
import type { CounterMap } from './counter-map.ts';
import type { CtMap } from './ct-map.ts';
import type { EndpointMap } from './endpoint-map.ts';
import type { FlowEvent } from './events.ts';
import type { IpcacheMap } from './ipcache-map.ts';
import type { LbMaps } from './lb-maps.ts';
import type { PolicyMap } from './policy-map.ts';
import type { PrefixMap } from './prefix-map.ts';
import type { StatsMap } from './stats-map.ts';

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
  /** datapath-wide statistics by Stat index, e.g. flow events lost to a full ring buffer */
  readonly stats: StatsMap;
  /** service load-balancing: frontends, slots, backends, connection -> backend */
  readonly lb: LbMaps;
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
