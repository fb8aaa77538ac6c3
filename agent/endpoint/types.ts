// Endpoints: the agent's record of a local pod's network attachment, the datapath seam and the
// wire format the CNI plugin speaks to the agent. Imports nothing from siblings.

export type PortProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface NamedPort {
  name: string;
  port: number;
  protocol: PortProtocol;
}

/** Everything the datapath needs to enforce policy for one local pod. */
export interface EndpointInfo {
  /** endpoint id, unique on the node (1..65535), stable across agent restarts */
  id: number;
  containerId: string;
  podNamespace: string;
  podName: string;
  /** pod IPv4 address (no prefix length) */
  ip: string;
  /** host side of the pod veth (lxc<hash>) in the node's namespace */
  hostIfname: string;
  hostIfindex: number;
  hostMac: string;
  /** pod side name (CNI_IFNAME, normally eth0) and MAC */
  podIfname: string;
  podMac: string;
  /** the pod's network namespace path (CNI_NETNS) */
  netnsPath: string;
  /** numeric security identity; RESERVED_INIT until the identity allocator labels the pod */
  identity: number;
  namedPorts: NamedPort[];
}

/** Reserved identity "init" (Cilium's value): an endpoint whose labels are not yet resolved. */
export const RESERVED_INIT = 5;

/**
 * What the endpoint manager asks of the datapath. The real one (agent/datapath) attaches the tc
 * programs on `hostIfindex` and writes the endpoint's map entries; the in-memory fake records calls.
 * Contract: both are idempotent (attach of an attached endpoint refreshes it, detach of an unknown
 * one succeeds), attach is called again for every restored endpoint after an agent restart, and a
 * throw from attach makes the manager roll the endpoint back.
 */
export interface EndpointDatapath {
  attach(ep: EndpointInfo): Promise<void>;
  detach(ep: EndpointInfo): Promise<void>;
  /** optional, for diagnostics and leak checks: ids of the endpoints the datapath holds */
  attachedIds?(): Promise<number[]>;
}

/** Plan of one pod link: host veth name, pod interface, pod namespace, address and gateway. */
export interface PodLinkPlan {
  host: string;
  pod: string;
  netns: string;
  ip: string;
  routerIP: string;
}

export interface LinkInfo {
  ifindex: number;
  mac: string;
}

/** The kernel side of endpoints (veth.ts through iproute2; a map in unit tests). */
export interface PodLinks {
  /** creates and configures both ends; throws on failure (the manager rolls back) */
  create(plan: PodLinkPlan): Promise<{ host: LinkInfo; pod: LinkInfo }>;
  /** deletes the host-side veth (its peer and routes go with it); absent is not an error */
  remove(hostIfname: string): Promise<void>;
  /** the host-side link, if it exists in the node's namespace */
  hostLink(hostIfname: string): Promise<LinkInfo | undefined>;
  /** whether the pod interface holds the address */
  podHasAddress(netns: string, ifname: string, ip: string): Promise<boolean>;
  /** names of every host-side pod veth (lxc…) in the node's namespace */
  listHostLinks(): Promise<string[]>;
}

/** CNI plugin -> agent, one JSON line per connection. */
export type EndpointRequest =
  | { op: 'ping' }
  | {
      op: 'add';
      containerId: string;
      netns: string;
      ifname: string;
      podNamespace?: string;
      podName?: string;
      namedPorts?: NamedPort[];
    }
  | { op: 'del'; containerId: string; ifname: string; netns?: string }
  | {
      op: 'check';
      containerId: string;
      ifname: string;
      netns: string;
      /** from prevResult */ expectIP?: string;
    }
  | { op: 'list' }
  /** the agent's status (`isthmus agent status`), answered by the daemon, not the manager */
  | { op: 'status' };

/** An error in CNI terms: the plugin passes code/msg/details through to its error result. */
export interface EndpointError {
  code: number;
  msg: string;
  details?: string;
}

export interface AddResult {
  endpoint: EndpointInfo;
  /** node-side gateway of the pod (the node's router IP) */
  gateway: string;
}

export type EndpointResponse =
  | {
      ok: true;
      result?: AddResult;
      endpoints?: EndpointInfo[];
      datapathIds?: number[];
      ipam?: Record<string, string>;
      /** answer to `status`: agent/daemon/types.ts AgentStatus */
      status?: unknown;
    }
  | { ok: false; error: EndpointError };

/** CNI spec error codes used here (spec 1.0 "Error" section), plus our plugin-specific ones. */
export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** plugin specific (>= 100) */
  AGENT_UNREACHABLE: 100,
  IPAM_EXHAUSTED: 101,
  SETUP_FAILED: 102,
  CHECK_FAILED: 103,
} as const;
