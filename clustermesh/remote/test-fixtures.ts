// Shared by this folder's tests: kvstore records of a remote cluster, a sink that records what
// it is told, a logger that keeps warnings, and polling.
import {
  clusterConfigFor,
  clusterConfigKey,
  encodeClusterConfig,
  encodeClusterService,
  encodeIPIdentityPair,
  encodeLabels,
  encodeNode,
  encodeSyncedTime,
  identityKey,
  ipcacheKey,
  ipIdentityPairFor,
  nodeKey,
  RejectReason,
  nodeRecordFor,
  serviceKey,
  syncedKey,
  SYNCED_STATE_PREFIXES,
  type ClusterService,
  type IdentityRecord,
  type IPIdentityPair,
  type NodeRecord,
} from '../kvstore/index.ts';
import type { KeyValue, NodeAddresses, RemoteLogger, RemoteSink } from './types.ts';

export const LOCAL = { name: 'c1', id: 1 };

/** Records a remote `cluster` (ID `id`) puts into its mesh etcd. Node i has pod CIDR 10.<id>.i.0/24. */
export function remoteFixture(cluster: string, id: number) {
  const base = id << 16;
  return {
    cluster,
    config: (cfgId = id): KeyValue => ({
      key: clusterConfigKey(cluster),
      value: encodeClusterConfig(clusterConfigFor(cfgId)),
    }),
    canaries: (): KeyValue[] =>
      SYNCED_STATE_PREFIXES.map((p) => ({
        key: syncedKey(cluster, p),
        value: encodeSyncedTime(new Date()),
      })),
    node: (i: number, over: Partial<NodeRecord> = {}): KeyValue => ({
      key: nodeKey(cluster, `n${i}`),
      value: encodeNode({
        ...nodeRecordFor({
          cluster,
          clusterId: id,
          name: `n${i}`,
          internalIps: [`172.18.${id}.${i}`],
          podCidrs: [`10.${id}.${i}.0/24`],
        }),
        ...over,
      }),
    }),
    identity: (n: number, labelCluster = cluster, rawId = base + n): KeyValue => ({
      key: identityKey(rawId),
      value: encodeLabels([
        { source: 'k8s', key: 'app', value: `app${n}` },
        { source: 'k8s', key: 'io.cilium.k8s.policy.cluster', value: labelCluster },
        { source: 'k8s', key: 'io.kubernetes.pod.namespace', value: 'prod' },
      ]),
    }),
    /** pod `p` on node `i`, with identity base+n */
    endpoint: (i: number, p: number, n: number, over: Partial<IPIdentityPair> = {}): KeyValue => {
      const ip = over.IP ?? `10.${id}.${i}.${p}`;
      return {
        key: ipcacheKey(ip),
        value: encodeIPIdentityPair({
          ...ipIdentityPairFor({
            ip,
            hostIp: `172.18.${id}.${i}`,
            identity: base + n,
            namespace: 'prod',
            pod: `pod-${p}`,
          }),
          ...over,
        }),
      };
    },
    service: (name: string, over: Partial<ClusterService> = {}): KeyValue => ({
      key: serviceKey(cluster, 'prod', name),
      value: encodeClusterService({
        cluster,
        namespace: 'prod',
        name,
        frontends: { '10.96.0.10': { http: { Protocol: 'TCP', Port: 80 } } },
        backends: { [`10.${id}.1.5`]: { http: { Protocol: 'TCP', Port: 8080 } } },
        labels: {},
        selector: {},
        includeExternal: true,
        shared: true,
        clusterID: id,
        ...over,
      }),
    }),
  };
}

/** A sink that writes each call as one line, e.g. `+ip c2 10.2.1.5 131073`. */
export class RecordingSink implements RemoteSink {
  readonly calls: string[] = [];
  upsertIdentity(c: string, i: IdentityRecord) {
    this.calls.push(`+id ${c} ${i.id}`);
  }
  deleteIdentity(c: string, i: IdentityRecord) {
    this.calls.push(`-id ${c} ${i.id}`);
  }
  upsertIpcache(c: string, e: IPIdentityPair) {
    this.calls.push(`+ip ${c} ${e.IP} ${e.ID}`);
  }
  deleteIpcache(c: string, e: IPIdentityPair) {
    this.calls.push(`-ip ${c} ${e.IP} ${e.ID}`);
  }
  upsertNode(c: string, n: NodeRecord, a: NodeAddresses) {
    this.calls.push(`+node ${c} ${n.Name} ${a.podCidrs.join(',')}`);
  }
  deleteNode(c: string, n: NodeRecord) {
    this.calls.push(`-node ${c} ${n.Name}`);
  }
  upsertService(c: string, s: ClusterService) {
    this.calls.push(`+svc ${c} ${s.namespace}/${s.name}`);
  }
  deleteService(c: string, s: ClusterService) {
    this.calls.push(`-svc ${c} ${s.namespace}/${s.name}`);
  }
  /** The calls since the last take(), sorted (order across kinds is checked separately). */
  take(): string[] {
    return this.calls.splice(0).sort();
  }
}

export class CapturingLogger implements RemoteLogger {
  readonly warnings: Record<string, unknown>[] = [];
  info(): void {}
  warn(fields: Record<string, unknown>): void {
    this.warnings.push(fields);
  }
}

export async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Records a hostile remote `f` may send, each with the reason it must be rejected for; none may
 * be applied. Keys are fresh (identity 9, endpoints .20-.22, nodes n6 and n7), so rejecting them
 * withdraws nothing that was accepted before.
 */
export function hostileRecords(f: ReturnType<typeof remoteFixture>): [string, KeyValue, string][] {
  return [
    [
      'identity labelled with the local cluster',
      f.identity(9, 'c1'),
      RejectReason.IdentityClusterLabelMismatch,
    ],
    [
      "identity in another cluster's range",
      f.identity(9, f.cluster, (3 << 16) + 9),
      RejectReason.IdentityOutOfRange,
    ],
    [
      'reserved identity in an ipcache entry',
      f.endpoint(1, 20, 0, { ID: 2 }),
      RejectReason.IdentityReserved,
    ],
    [
      "IP outside its nodes' pod CIDRs",
      f.endpoint(1, 21, 1, { IP: '10.9.9.9' }),
      RejectReason.IpOutsidePodCidrs,
    ],
    ['IP of a local pod', f.endpoint(1, 22, 1, { IP: '10.1.1.5' }), RejectReason.IpOwnedElsewhere],
    ['node of another cluster', f.node(7, { Cluster: 'c3' }), RejectReason.ClusterNameMismatch],
    [
      'malformed JSON',
      { key: nodeKey(f.cluster, 'n6'), value: '{"Name":' },
      RejectReason.MalformedJson,
    ],
  ];
}
