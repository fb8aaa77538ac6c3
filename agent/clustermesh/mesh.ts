// The agent's side of ClusterMesh: a bundle directory of remote clusters (clustermesh/remote)
// whose accepted state the AgentMeshSink merges into this node's tables. The shared MeshTable
// is fed the local cluster's nodes and pod IPs, so remote records overlapping them are refused.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { MeshTable } from '../../clustermesh/kvstore/index.ts';
import { BundleDirectory, type RemoteStatus } from '../../clustermesh/remote/index.ts';
import type { IpcacheEntry } from '../ipcache/types.ts';
import type { NodeRoute } from '../routing/types.ts';
import {
  AgentMeshSink,
  type MeshTargets,
  type RemoteNodeRoute,
  type SinkCounters,
} from './sink.ts';
import {
  DEFAULT_SERVICE_WITHDRAWAL_MS,
  startWithdrawalClock,
  WithdrawalClock,
} from './withdrawal.ts';

export interface AgentMeshConfig {
  cluster: { name: string; id: number };
  /** directory of signed connection bundles, one file per remote cluster */
  bundleDir: string;
  /** the mesh CA certificate (PEM file) bundles must be signed with */
  caFile: string;
  /** a remote not connected this long has its service backends withdrawn (default 5 min) */
  serviceWithdrawalMs?: number;
}

export interface AgentMeshStatus {
  remotes: RemoteStatus[];
  /** sink calls applied, per remote cluster, kind and op */
  applied: SinkCounters;
  /** remote nodes with their routes (pod CIDR via node IP) */
  nodes: RemoteNodeRoute[];
  /** remote clusters whose service backends are withdrawn (not connected for too long) */
  withdrawn: string[];
}

export interface AgentMesh {
  status(): AgentMeshStatus;
  stop(): Promise<void>;
}

export interface AgentMeshDeps extends MeshTargets {
  /** the local cluster's nodes as the node table knows them */
  localNodes(): NodeRoute[];
}

/** Starts following the bundle directory; resolves once every present bundle was tried. */
export async function startAgentMesh(
  config: AgentMeshConfig,
  deps: AgentMeshDeps,
): Promise<AgentMesh> {
  const mesh = new MeshTable(config.cluster);
  const feeder = localFeeder(mesh, config.cluster, deps.localNodes);
  const unsubscribe = deps.ipcache.onChange(feeder.feed);
  for (const [cidr, entry] of deps.ipcache.all()) feeder.feed(cidr, entry);
  const sink = new AgentMeshSink(deps);
  const log = {
    info: (fields: Record<string, unknown>, msg: string) => deps.log(`clustermesh: ${msg}`, fields),
    warn: (fields: Record<string, unknown>, msg: string) =>
      deps.log(`clustermesh: ${msg}`, { level: 'warn', ...fields }),
  };
  const bundles = new BundleDirectory({
    dir: config.bundleDir,
    trustedCaPem: () => readFileSync(config.caFile, 'utf8'),
    mesh,
    sink,
    log,
    registry: new Registry(),
  });
  await bundles.start();
  const withdrawAfter = config.serviceWithdrawalMs ?? DEFAULT_SERVICE_WITHDRAWAL_MS;
  const stopClock = sink.services
    ? startWithdrawalClock(new WithdrawalClock(sink.services, withdrawAfter), withdrawAfter, () =>
        bundles.status(),
      )
    : () => {};
  return {
    status: () => ({
      remotes: bundles.status(),
      applied: sink.counters,
      nodes: sink.remoteNodes(),
      withdrawn: sink.services?.withdrawnClusters() ?? [],
    }),
    async stop() {
      stopClock();
      unsubscribe();
      feeder.stop();
      await bundles.stop();
    },
  };
}

/** How soon a local node change that no node row revealed (a pod CIDR change) is picked up. */
export const LOCAL_NODES_RECHECK_MS = 1000;

/**
 * Keeps the mesh view's local part current from ipcache changes: local pod IPs (identities of
 * the local cluster's range) and the local node list. The node list is read again at once when
 * a node row changes (reserved identity, or a known node IP deleted) and otherwise at most once
 * per `recheckMs` after any change: reading it on every row cost O(local nodes) per remote pod
 * (1.2 ms per row with 1,000 local nodes, i.e. a minute for 50,000 remote endpoints).
 */
export function localFeeder(
  mesh: MeshTable,
  local: { name: string; id: number },
  localNodes: () => NodeRoute[],
  recheckMs = LOCAL_NODES_RECHECK_MS,
): { feed: (cidr: string, entry: IpcacheEntry | undefined) => void; stop(): void } {
  let nodesKey = '';
  let nodeIps = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const refreshNodes = () => {
    clearTimeout(timer);
    timer = undefined;
    const nodes = localNodes();
    const key = JSON.stringify(nodes);
    if (key === nodesKey) return;
    nodesKey = key;
    nodeIps = new Set(nodes.map((n) => n.underlayIP));
    for (const n of mesh.nodesOf(local.name)) mesh.removeNode(local.name, n.name);
    for (const n of nodes)
      mesh.upsertNode({
        cluster: local.name,
        name: n.name,
        podCidrs: [n.podCIDR],
        ips: [n.underlayIP],
      });
  };
  refreshNodes();
  return {
    feed(cidr, entry) {
      const ip = cidr.endsWith('/32') ? cidr.slice(0, -3) : cidr;
      if (entry && entry.identity >> 16 === local.id) mesh.setEndpoint(ip, local.name);
      else if (!entry && mesh.endpointOwner(ip) === local.name) mesh.removeEndpoint(ip);
      const nodeRow = entry ? entry.identity >> 16 === 0 : nodeIps.has(ip);
      if (nodeRow) refreshNodes();
      else timer ??= setTimeout(refreshNodes, recheckMs).unref();
    },
    stop: () => clearTimeout(timer),
  };
}
