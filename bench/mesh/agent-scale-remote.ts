// The synthetic remote cluster of bench/mesh/agent-scale.ts, in DESIGN.md's kvstore format and
// written with clustermesh/kvstore's codecs: its cluster config, `nodes` nodes whose /24 pod CIDRs
// hold 250 pods each (node IPs on the lab's underlay, so the agent's routes to them are valid),
// `identities` identities and pods spread over them, and the synced canaries.
import type { Etcd3 } from 'etcd3';
import {
  clusterConfigFor,
  clusterConfigKey,
  encodeClusterConfig,
  encodeIPIdentityPair,
  encodeLabels,
  encodeNode,
  encodeSyncedTime,
  identityKey,
  ipcacheKey,
  ipIdentityPairFor,
  nodeKey,
  nodeRecordFor,
  syncedKey,
  SYNCED_STATE_PREFIXES,
} from '../../clustermesh/kvstore/index.ts';
import type { KeyValue } from '../../clustermesh/remote/types.ts';

export const PODS_PER_NODE = 250;

export interface RemoteShape {
  cluster: string;
  id: number;
  nodes: number;
  identities: number;
  /** first host address of the nodes on the underlay, e.g. 172.30.0.20 (node i is .20+i-1) */
  nodeIpBase: [number, number, number, number];
}

export class SyntheticRemote {
  constructor(readonly s: RemoteShape) {
    if (s.nodes > 255 || s.nodeIpBase[3] + s.nodes > 254)
      throw new Error(`${s.nodes} nodes do not fit the address plan: use at most 200`);
  }

  nodeIp(i: number): string {
    const [a, b, c, d] = this.s.nodeIpBase;
    return `${a}.${b}.${c}.${d + i - 1}`;
  }

  /** Pod `k` (0-based) on node 1 + k % nodes, host .1-.250 of that node's /24. */
  podIp(k: number): string {
    const node = 1 + (k % this.s.nodes);
    const host = 1 + Math.floor(k / this.s.nodes);
    return `10.${this.s.id}.${node}.${host}`;
  }

  /** Pods >= this index do not fit the pod CIDRs. */
  get capacity(): number {
    return this.s.nodes * 254;
  }

  config(): KeyValue {
    return {
      key: clusterConfigKey(this.s.cluster),
      value: encodeClusterConfig(clusterConfigFor(this.s.id)),
    };
  }

  canaries(): KeyValue[] {
    return SYNCED_STATE_PREFIXES.map((p) => ({
      key: syncedKey(this.s.cluster, p),
      value: encodeSyncedTime(new Date()),
    }));
  }

  node(i: number): KeyValue {
    const { cluster, id } = this.s;
    return {
      key: nodeKey(cluster, `n${i}`),
      value: encodeNode(
        nodeRecordFor({
          cluster,
          clusterId: id,
          name: `n${i}`,
          internalIps: [this.nodeIp(i)],
          podCidrs: [`10.${id}.${i}.0/24`],
        }),
      ),
    };
  }

  identity(n: number): KeyValue {
    return {
      key: identityKey((this.s.id << 16) + n),
      value: encodeLabels([
        { source: 'k8s', key: 'app', value: `app${n}` },
        { source: 'k8s', key: 'io.cilium.k8s.policy.cluster', value: this.s.cluster },
        { source: 'k8s', key: 'io.kubernetes.pod.namespace', value: `ns${n % 10}` },
      ]),
    };
  }

  /** The identity of pod k (ids 1..identities of this cluster's range, round robin). */
  identityOf(k: number): number {
    return (this.s.id << 16) + 1 + (k % this.s.identities);
  }

  endpoint(k: number): KeyValue {
    const ip = this.podIp(k);
    return {
      key: ipcacheKey(ip),
      value: encodeIPIdentityPair(
        ipIdentityPairFor({
          ip,
          hostIp: this.nodeIp(1 + (k % this.s.nodes)),
          identity: this.identityOf(k),
          namespace: `ns${k % 10}`,
          pod: `pod-${k}`,
        }),
      ),
    };
  }

  /** Everything but the endpoints and the canaries. */
  base(): KeyValue[] {
    const kvs = [this.config()];
    for (let i = 1; i <= this.s.nodes; i++) kvs.push(this.node(i));
    for (let n = 1; n <= this.s.identities; n++) kvs.push(this.identity(n));
    return kvs;
  }
}

/** Puts (or deletes, value undefined) in transactions of 100, `inFlight` transactions at once. */
export async function writeBatched(
  client: Etcd3,
  kvs: readonly { key: string; value?: string }[],
  inFlight = 8,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < kvs.length) {
      const batch = kvs.slice(next, next + 100);
      next += 100;
      const ops = batch.map((kv) =>
        kv.value === undefined ? client.delete().key(kv.key) : client.put(kv.key).value(kv.value),
      );
      await client
        .if('cilium/none', 'Version', '==', 0)
        .then(...ops)
        .commit();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}
