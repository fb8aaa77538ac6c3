// Value shapes of the ClusterMesh kvstore, wire-compatible with Cilium's kvstore v1.
// Field names mirror Cilium's Go JSON tags exactly; each interface names its Go struct.
// This file imports nothing from its siblings.

/** An expected failure as a value (STYLE.md rule 8). */
export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };

/** Why a remote record was refused. Stable codes: logs and metrics are keyed by them. */
export const RejectReason = {
  /** the key is not one of the layout's keys, or a segment is empty or malformed */
  MalformedKey: 'malformed-key',
  /** the value is not valid JSON */
  MalformedJson: 'malformed-json',
  /** JSON parsed but a field has the wrong type or an unparsable address/label */
  MalformedValue: 'malformed-value',
  /** a cluster name in key or value is not the remote's */
  ClusterNameMismatch: 'cluster-name-mismatch',
  /** a cluster ID in a value is not the remote's */
  ClusterIdMismatch: 'cluster-id-mismatch',
  /** the cluster ID is outside 1..255 */
  ClusterIdInvalid: 'cluster-id-invalid',
  /** the remote announces the local cluster's ID */
  ClusterIdLocal: 'cluster-id-local',
  /** the remote announces an ID another connected cluster already uses */
  ClusterIdInUse: 'cluster-id-in-use',
  /** the key's name/IP disagrees with the value's */
  KeyValueMismatch: 'key-value-mismatch',
  /** a numeric identity outside the remote's range (clusterID << 16 | 0..0xffff) */
  IdentityOutOfRange: 'identity-out-of-range',
  /** a reserved identity (1..255) where a workload identity is required */
  IdentityReserved: 'identity-reserved',
  /** the identity's labels lack io.cilium.k8s.policy.cluster */
  IdentityClusterLabelMissing: 'identity-cluster-label-missing',
  /** the identity's labels name another cluster (the local one, or a third) */
  IdentityClusterLabelMismatch: 'identity-cluster-label-mismatch',
  /** the identity carries `reserved:` or `cidr:` labels, which only the local agent assigns */
  IdentityReservedLabel: 'identity-reserved-label',
  /** an ipcache IP outside every pod CIDR of the remote's nodes */
  IpOutsidePodCidrs: 'ip-outside-pod-cidrs',
  /** an ipcache IP already owned by an endpoint of another cluster (e.g. a local pod) */
  IpOwnedElsewhere: 'ip-owned-elsewhere',
  /** an ipcache HostIP that is not an address of one of the remote's nodes */
  HostIpUnknown: 'host-ip-unknown',
  /** a node's pod CIDR overlaps a pod CIDR or node IP already in the mesh */
  PodCidrOverlap: 'pod-cidr-overlap',
  /** a node IP is already used by another node or lies in another's pod CIDR */
  NodeIpOverlap: 'node-ip-overlap',
} as const;
export type RejectReason = (typeof RejectReason)[keyof typeof RejectReason];

export interface Rejection {
  reason: RejectReason;
  /** human-readable: what was wrong, with the offending values */
  detail: string;
}

export type Validated<T> = Result<T, Rejection>;

/** pkg/clustermesh/types CiliumClusterConfig, key cilium/cluster-config/<cluster>. */
export interface ClusterConfig {
  id: number;
  capabilities?: ClusterCapabilities;
}

export interface ClusterCapabilities {
  syncedCanaries?: boolean;
  maxConnectedClusters?: number;
  serviceExportsEnabled?: boolean | null;
}

/** pkg/identity NamedPort (inside IPIdentityPair). */
export interface NamedPort {
  Name: string;
  Port: number;
  Protocol: string;
}

/** pkg/identity IPIdentityPair, key cilium/state/ip/v1/default/<ip>. */
export interface IPIdentityPair {
  IP: string;
  /** base64 of the net.IPMask bytes; null for a host entry (the usual case) */
  Mask: string | null;
  HostIP: string;
  ID: number;
  /** IPsec key index; 0 when unused */
  Key: number;
  Metadata: string;
  K8sNamespace?: string;
  K8sPodName?: string;
  K8sServiceAccount?: string;
  NamedPorts?: NamedPort[];
}

/** pkg/node/addressing: Cilium's node address types. */
export type NodeAddressType =
  'Hostname' | 'ExternalIP' | 'InternalIP' | 'ExternalDNS' | 'InternalDNS' | 'CiliumInternalIP';

/** pkg/node/types Address. */
export interface NodeAddress {
  Type: NodeAddressType | string;
  IP: string;
}

/** Go's net.IPNet JSON: IP as text, Mask as base64 of the mask bytes (4 or 16). */
export interface IPNetJson {
  IP: string;
  Mask: string;
}

/** pkg/node/types Node, key cilium/state/nodes/v1/<cluster>/<node>. */
export interface NodeRecord {
  Name: string;
  Cluster: string;
  IPAddresses: NodeAddress[] | null;
  IPv4AllocCIDR: IPNetJson | null;
  IPv4SecondaryAllocCIDRs?: IPNetJson[] | null;
  IPv6AllocCIDR: IPNetJson | null;
  IPv6SecondaryAllocCIDRs?: IPNetJson[] | null;
  IPv4HealthIP?: string;
  IPv6HealthIP?: string;
  IPv4IngressIP?: string;
  IPv6IngressIP?: string;
  ClusterID: number;
  Source: string;
  EncryptionKey: number;
  Labels?: Record<string, string> | null;
  Annotations?: Record<string, string> | null;
  NodeIdentity?: number;
  WireguardPubKey: string;
  BootID?: string;
  // Isthmus extensions (Cilium ignores unknown fields): what a peer needs during a key rotation.
  /** UDP port of `WireguardPubKey`'s device; absent = the mesh default (51871) */
  WireguardPort?: number;
  /** the next key while the node rotates (published next to the current one) */
  WireguardPubKeyNext?: string;
  /** UDP port of the next key's device; absent = the mesh default (51872) */
  WireguardPortNext?: number;
}

/** pkg/loadbalancer L4Addr. */
export interface L4Addr {
  Protocol: string;
  Port: number;
}

/** pkg/clustermesh/store PortConfiguration: port name → L4 address. */
export type PortConfiguration = Record<string, L4Addr>;

/** pkg/clustermesh/store ClusterService, key cilium/state/services/v1/<cluster>/<ns>/<name>. */
export interface ClusterService {
  cluster: string;
  namespace: string;
  name: string;
  frontends: Record<string, PortConfiguration>;
  backends: Record<string, PortConfiguration>;
  hostnames?: Record<string, string>;
  labels: Record<string, string>;
  selector: Record<string, string>;
  includeExternal: boolean;
  shared: boolean;
  clusterID: number;
}

/** One security label: `source:key=value`. */
export interface Label {
  source: string;
  key: string;
  value: string;
}

/** An identity record: numeric ID (from the key) and its labels (the value). */
export interface IdentityRecord {
  id: number;
  labels: Label[];
}

/** The synced canary: written once the initial listing of `prefix` was fully mirrored. */
export interface SyncedCanary {
  cluster: string;
  prefix: string;
  /** RFC 3339 time as stored */
  time: string;
}
