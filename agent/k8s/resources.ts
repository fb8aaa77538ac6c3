// The resources the agent watches, typed as far as the agent reads them.
import type { KubeObject, ResourceDef } from './types.ts';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface Pod extends KubeObject {
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    hostNetwork?: boolean;
    containers?: { name: string; ports?: ContainerPort[] }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    hostIP?: string;
  };
}

export interface Namespace extends KubeObject {}

export interface Node extends KubeObject {
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type: string; address: string }[] };
}

export interface Service extends KubeObject {
  spec?: Record<string, unknown>;
}
export interface EndpointSlice extends KubeObject {
  addressType?: string;
  endpoints?: unknown[];
  ports?: unknown[];
}
export interface NetworkPolicy extends KubeObject {
  spec?: Record<string, unknown>;
}
export interface CiliumNetworkPolicy extends KubeObject {
  spec?: Record<string, unknown>;
  specs?: Record<string, unknown>[];
}

/** A named port as Cilium's models.Port: `{name, port, protocol}`. */
export interface NamedPort {
  name: string;
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
}

/**
 * cilium.io/v2 CiliumEndpoint, the fields of Cilium's EndpointStatus the mesh uses:
 * `identity` {id, labels as "source:key=value"}, `networking` {addressing [{ipv4, ipv6}],
 * node (host IP)}, `named-ports`, `state`.
 */
export interface CiliumEndpoint extends KubeObject {
  status?: {
    id?: number;
    identity?: { id: number; labels?: string[] };
    networking?: { addressing: { ipv4?: string; ipv6?: string }[]; node?: string };
    encryption?: { key?: number };
    'named-ports'?: NamedPort[];
    state?: string;
  };
}

/** cilium.io/v2 CiliumIdentity: name is the numeric identity; labels as Cilium stores them. */
export interface CiliumIdentity extends KubeObject {
  /** "source:key" -> value, e.g. "k8s:app": "db". */
  'security-labels': Record<string, string>;
}

const def = <T extends KubeObject>(d: ResourceDef<T>): ResourceDef<T> => Object.freeze(d);

export const Namespaces = def<Namespace>({
  apiVersion: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  namespaced: false,
});

export const Nodes = def<Node>({
  apiVersion: 'v1',
  kind: 'Node',
  plural: 'nodes',
  namespaced: false,
});

/** Pods of the whole cluster; see localPods() for the agent's own node. */
export const Pods = def<Pod>({ apiVersion: 'v1', kind: 'Pod', plural: 'pods', namespaced: true });

/** The pods scheduled to one node (kubelet's and Cilium's field selector). */
export function localPods(nodeName: string): ResourceDef<Pod> {
  return def<Pod>({ ...Pods, fieldSelector: `spec.nodeName=${nodeName}` });
}

export const Services = def<Service>({
  apiVersion: 'v1',
  kind: 'Service',
  plural: 'services',
  namespaced: true,
});

export const EndpointSlices = def<EndpointSlice>({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  plural: 'endpointslices',
  namespaced: true,
});

export const NetworkPolicies = def<NetworkPolicy>({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  plural: 'networkpolicies',
  namespaced: true,
});

export const CiliumNetworkPolicies = def<CiliumNetworkPolicy>({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumNetworkPolicy',
  plural: 'ciliumnetworkpolicies',
  namespaced: true,
});

export const CiliumClusterwideNetworkPolicies = def<CiliumNetworkPolicy>({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumClusterwideNetworkPolicy',
  plural: 'ciliumclusterwidenetworkpolicies',
  namespaced: false,
});

export const CiliumEndpoints = def<CiliumEndpoint>({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumEndpoint',
  plural: 'ciliumendpoints',
  namespaced: true,
});

export const CiliumIdentities = def<CiliumIdentity>({
  apiVersion: 'cilium.io/v2',
  kind: 'CiliumIdentity',
  plural: 'ciliumidentities',
  namespaced: false,
});

/** Everything one agent watches, ready to be turned into Resources by the daemon. */
export function agentResources(nodeName: string) {
  return {
    namespaces: Namespaces,
    pods: localPods(nodeName),
    nodes: Nodes,
    endpoints: CiliumEndpoints,
    networkPolicies: NetworkPolicies,
    ciliumNetworkPolicies: CiliumNetworkPolicies,
    ciliumClusterwideNetworkPolicies: CiliumClusterwideNetworkPolicies,
    services: Services,
    endpointSlices: EndpointSlices,
    identities: CiliumIdentities,
  } as const;
}
