// Builders of kvstore values from plain inputs, for writers (the clustermesh API server) and
// tests: they fill Cilium's fields and zero values so encode* writes what Cilium would.
import { cidrToIpNet } from './codecs.ts';
import { parsePrefix } from './prefixes.ts';
import type {
  ClusterConfig,
  IPIdentityPair,
  IPNetJson,
  NamedPort,
  NodeAddress,
  NodeRecord,
} from './types.ts';

export const MAX_CONNECTED_CLUSTERS = 255;

export function clusterConfigFor(id: number): ClusterConfig {
  return {
    id,
    capabilities: { syncedCanaries: true, maxConnectedClusters: MAX_CONNECTED_CLUSTERS },
  };
}

export interface NodeInput {
  cluster: string;
  clusterId: number;
  name: string;
  /** InternalIP addresses, first is the node's primary address */
  internalIps: string[];
  /** pod CIDRs (`ip/len`); per family the first is the primary alloc CIDR */
  podCidrs: string[];
  wireguardPubKey?: string;
  /** the port of `wireguardPubKey` and, during a rotation, the next key and its port */
  wireguardPort?: number;
  wireguardPubKeyNext?: string;
  wireguardPortNext?: number;
  bootId?: string;
  labels?: Record<string, string>;
  /** Cilium's source.Source; `kvstore` for records mirrored into the mesh etcd */
  source?: string;
}

export function nodeRecordFor(n: NodeInput): NodeRecord {
  const v4: IPNetJson[] = [];
  const v6: IPNetJson[] = [];
  for (const cidr of n.podCidrs)
    (parsePrefix(cidr)?.addr.kind() === 'ipv6' ? v6 : v4).push(cidrToIpNet(cidr));
  const addresses: NodeAddress[] = n.internalIps.map((IP) => ({ Type: 'InternalIP', IP }));
  return {
    Name: n.name,
    Cluster: n.cluster,
    IPAddresses: addresses,
    IPv4AllocCIDR: v4[0] ?? null,
    IPv4SecondaryAllocCIDRs: v4.length > 1 ? v4.slice(1) : null,
    IPv6AllocCIDR: v6[0] ?? null,
    IPv6SecondaryAllocCIDRs: v6.length > 1 ? v6.slice(1) : null,
    ClusterID: n.clusterId,
    Source: n.source ?? 'kvstore',
    EncryptionKey: 0,
    Labels: n.labels ?? null,
    WireguardPubKey: n.wireguardPubKey ?? '',
    BootID: n.bootId ?? '',
    ...(n.wireguardPort !== undefined && { WireguardPort: n.wireguardPort }),
    ...(n.wireguardPubKeyNext && { WireguardPubKeyNext: n.wireguardPubKeyNext }),
    ...(n.wireguardPortNext !== undefined && { WireguardPortNext: n.wireguardPortNext }),
  };
}

export interface EndpointInput {
  ip: string;
  hostIp: string;
  identity: number;
  namespace?: string;
  pod?: string;
  serviceAccount?: string;
  namedPorts?: NamedPort[];
}

/** A host ipcache entry (Mask null) for one endpoint IP. */
export function ipIdentityPairFor(e: EndpointInput): IPIdentityPair {
  return {
    IP: e.ip,
    Mask: null,
    HostIP: e.hostIp,
    ID: e.identity,
    Key: 0,
    Metadata: '',
    ...(e.namespace ? { K8sNamespace: e.namespace } : {}),
    ...(e.pod ? { K8sPodName: e.pod } : {}),
    ...(e.serviceAccount ? { K8sServiceAccount: e.serviceAccount } : {}),
    ...(e.namedPorts && e.namedPorts.length > 0 ? { NamedPorts: e.namedPorts } : {}),
  };
}
