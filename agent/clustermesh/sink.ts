// The agent's RemoteSink: accepted remote state merged into the node's tables. Remote identities
// go to the policy engine (selectors naming io.cilium.k8s.policy.cluster select them), remote pod
// IPs to the ipcache (BPF) with their identity, remote node IPs as remote-node, remote nodes' pod
// CIDRs get native routes via their node IPs — or, with encryption on, become WireGuard peers
// whose pod CIDRs route into the tunnel — global services' remote backends go to the service
// table. Every change is counted per cluster and kind, so tests can assert "no deletes".
import ipaddr from 'ipaddr.js';
import type {
  ClusterService,
  IdentityRecord,
  IPIdentityPair,
  NodeRecord,
} from '../../clustermesh/kvstore/index.ts';
import type { NodeAddresses, RemoteSink } from '../../clustermesh/remote/index.ts';
import { ReservedIdentity, type SecurityLabels } from '../identity/types.ts';
import type { IpcacheTable } from '../ipcache/table.ts';
import { hostPrefix } from '../ipcache/types.ts';
import type { NodeRouteReconciler } from '../routing/reconciler.ts';
import type { ServiceTable } from '../services/table.ts';
import type { WgNode } from '../wireguard/types.ts';
import type { Backend, Protocol } from '../services/types.ts';
import { RemoteServices } from './withdrawal.ts';

export interface MeshTargets {
  /** engine.upsertIdentity / removeIdentity, deltas applied to the policy maps */
  upsertIdentity(id: number, labels: SecurityLabels): void;
  removeIdentity(id: number): void;
  ipcache: IpcacheTable;
  routes: NodeRouteReconciler;
  services?: ServiceTable;
  /** transparent encryption (agent/daemon/encryption.ts): remote nodes become peers */
  encryption?: RemoteNodeEncryption;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

/** Where remote nodes go when the node encrypts: its WireGuard node table. Upserts must mark
 * the node's IP as tunnelled before returning (the native route that follows is then skipped). */
export interface RemoteNodeEncryption {
  upsertRemoteNode(node: WgNode): void;
  deleteRemoteNode(name: string): void;
}

export type SinkOp = 'upsert' | 'delete';
export type SinkKind = 'identities' | 'ipcache' | 'nodes' | 'services';

/** Per cluster, kind and op: how many sink calls were applied (status, tests). */
export type SinkCounters = Record<string, Record<SinkKind, Record<SinkOp, number>>>;

export interface RemoteNodeRoute {
  cluster: string;
  node: string;
  underlayIP: string;
  podCIDR: string;
}

export class AgentMeshSink implements RemoteSink {
  readonly counters: SinkCounters = {};
  /** route name -> the remote node's IPs, for ipcache rows of remote nodes */
  private readonly nodeIps = new Map<string, string[]>();
  /** route name -> the remote node as routed (status: datapath health probes) */
  private readonly routed = new Map<string, RemoteNodeRoute>();

  /** remote services on their way to the service table (withdrawal after a disconnect) */
  readonly services: RemoteServices | undefined;

  constructor(private readonly t: MeshTargets) {
    this.services = t.services && new RemoteServices(t.services);
  }

  upsertIdentity(cluster: string, identity: IdentityRecord): void {
    this.count(cluster, 'identities', 'upsert');
    this.t.upsertIdentity(identity.id, securityLabels(identity));
  }

  deleteIdentity(cluster: string, identity: IdentityRecord): void {
    this.count(cluster, 'identities', 'delete');
    this.t.removeIdentity(identity.id);
  }

  upsertIpcache(cluster: string, entry: IPIdentityPair): void {
    this.count(cluster, 'ipcache', 'upsert');
    const cidr = entryCidr(entry);
    if (!cidr) return;
    this.t.ipcache.upsert('remote', {
      cidr,
      identity: entry.ID,
      ...(entry.HostIP && { hostIp: entry.HostIP }),
    });
  }

  deleteIpcache(cluster: string, entry: IPIdentityPair): void {
    this.count(cluster, 'ipcache', 'delete');
    const cidr = entryCidr(entry);
    if (cidr) this.t.ipcache.delete('remote', cidr);
  }

  upsertNode(cluster: string, node: NodeRecord, addresses: NodeAddresses): void {
    this.count(cluster, 'nodes', 'upsert');
    const name = routeName(cluster, node.Name);
    const before = this.nodeIps.get(name) ?? [];
    for (const ip of before) if (!addresses.ips.includes(ip)) this.t.ipcache.delete('remote', ip);
    this.nodeIps.set(name, addresses.ips);
    for (const ip of addresses.ips)
      this.t.ipcache.upsert('remote', { cidr: ip, identity: ReservedIdentity['remote-node'] });
    const underlayIP = addresses.ips.find((ip) => ipaddr.IPv4.isValidFourPartDecimal(ip));
    const podCIDR = addresses.podCidrs.find((c) => !c.includes(':'));
    if (!underlayIP || !podCIDR) {
      this.t.log('remote node without IPv4 address or pod CIDR: not routed', { cluster, name });
      return;
    }
    this.routed.set(name, { cluster, node: node.Name, underlayIP, podCIDR });
    this.t.encryption?.upsertRemoteNode(wgNodeOf(name, node, underlayIP, addresses));
    this.t.routes.update({ name, underlayIP, podCIDR }).catch((err: unknown) => {
      this.t.log('remote node route failed', { cluster, name, error: String(err) });
    });
  }

  deleteNode(cluster: string, node: NodeRecord): void {
    this.count(cluster, 'nodes', 'delete');
    const name = routeName(cluster, node.Name);
    for (const ip of this.nodeIps.get(name) ?? []) this.t.ipcache.delete('remote', ip);
    this.nodeIps.delete(name);
    this.routed.delete(name);
    this.t.encryption?.deleteRemoteNode(name);
    this.t.routes.delete(name).catch((err: unknown) => {
      this.t.log('remote node route removal failed', { cluster, name, error: String(err) });
    });
  }

  upsertService(cluster: string, service: ClusterService): void {
    this.count(cluster, 'services', 'upsert');
    this.services?.upsert(cluster, service.namespace, service.name, remoteBackends(service));
  }

  deleteService(cluster: string, service: ClusterService): void {
    this.count(cluster, 'services', 'delete');
    this.services?.delete(cluster, service.namespace, service.name);
  }

  /** Remote nodes as routed now. */
  remoteNodes(): RemoteNodeRoute[] {
    return [...this.routed.values()];
  }

  private count(cluster: string, kind: SinkKind, op: SinkOp): void {
    const zero = () => ({ upsert: 0, delete: 0 });
    const c = (this.counters[cluster] ??= {
      identities: zero(),
      ipcache: zero(),
      nodes: zero(),
      services: zero(),
    });
    c[kind][op]++;
  }
}

/** Route names of remote nodes carry the cluster, so they never clash with local node names. */
export const routeName = (cluster: string, node: string): string => `${cluster}/${node}`;

/** A remote node record as a WireGuard table row (no key: a row without a peer, whose pod
 * CIDRs still route into the tunnel, where WireGuard drops them: never plaintext). */
export function wgNodeOf(
  name: string,
  node: NodeRecord,
  underlayIP: string,
  addresses: NodeAddresses,
): WgNode {
  const row: WgNode = {
    name,
    nodeIP: underlayIP,
    podCIDRs: addresses.podCidrs.filter((c) => !c.includes(':')),
    podIPs: [],
  };
  if (node.WireguardPubKey) row.publicKey = node.WireguardPubKey;
  if (node.WireguardPort !== undefined) row.port = node.WireguardPort;
  if (node.WireguardPubKeyNext) row.nextPublicKey = node.WireguardPubKeyNext;
  if (node.WireguardPortNext !== undefined) row.nextPort = node.WireguardPortNext;
  return row;
}

/** `k8s:` labels keep their bare key in the engine (as local identities do); others keep source. */
function securityLabels(identity: IdentityRecord): SecurityLabels {
  const labels = new Map<string, string>();
  for (const l of identity.labels)
    labels.set(l.source === 'k8s' ? l.key : `${l.source}:${l.key}`, l.value);
  return labels;
}

function entryCidr(entry: IPIdentityPair): string | undefined {
  if (!entry.Mask) return hostPrefix(entry.IP);
  const bits = Buffer.from(entry.Mask, 'base64').reduce(
    (n, b) => n + b.toString(2).replaceAll('0', '').length,
    0,
  );
  return `${entry.IP}/${bits}`;
}

function remoteBackends(service: ClusterService): Backend[] {
  return Object.entries(service.backends).map(([addr, ports]) => ({
    addr,
    ready: true,
    ports: Object.fromEntries(
      Object.entries(ports).map(([name, p]) => [
        name,
        { port: p.Port, protocol: p.Protocol.toUpperCase() as Protocol },
      ]),
    ),
  }));
}
