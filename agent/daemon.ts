// The node agent: the endpoint manager behind its unix socket, the node route reconciler and,
// when the config names a cluster's API server, the control plane (agent/daemon/): identities,
// ipcache, policies and their enforcement in the BPF maps. Runs inside the node's network
// namespace (hostNetwork). The datapath is injected (main.ts: the kernel one or the fake).
import { mkdirSync, writeFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { join } from 'node:path';
import { startAgentMesh, type AgentMesh } from './clustermesh/mesh.ts';
import { AgentControlPlane, loadKubeConfig } from './daemon/control-plane.ts';
import { NodeEncryption } from './daemon/encryption.ts';
import { KubeClient } from './k8s/client.ts';
import type { AgentStatus } from './daemon/types.ts';
import type { Datapath } from './datapath/types.ts';
import { EndpointManager } from './endpoint/manager.ts';
import { EndpointServer } from './endpoint/server.ts';
import type { EndpointDatapath } from './endpoint/types.ts';
import { IprouteNetlink } from './routing/iproute-netlink.ts';
import { NodeRouteReconciler, validateNode } from './routing/reconciler.ts';
import type { NodeRoute, RouteNetlink } from './routing/types.ts';

export interface AgentConfig {
  nodeName: string;
  nodeIP: string;
  podCIDR: string;
  /** every node of the cluster (this one included or not), for native routing */
  nodes: NodeRoute[];
  /** bpffs mount of this node; BPF objects are pinned below it */
  bpffs: string;
  /** state dir: IPAM and endpoint files, the endpoint socket */
  stateDir: string;
  /** period of the full route pass (default 10 s) */
  routeIntervalMs?: number;
  /** "bpf": the kernel datapath pinned under bpffs; "fake" (default): in memory, no enforcement */
  datapath?: 'bpf' | 'fake';
  /** the cluster's API server; without it no identities, ipcache or policy are managed */
  kubeconfig?: string;
  /** this node's cluster (name as in the identity labels, id 1-255); required with kubeconfig */
  cluster?: { name: string; id: number };
  /** period of the policy and ipcache full passes that read the maps back (default 10 s) */
  fullPassIntervalMs?: number;
  /** ClusterMesh: remote clusters' signed bundles (one file each) and the mesh CA to verify them */
  clustermesh?: { bundleDir: string; caFile: string; serviceWithdrawalMs?: number };
  /** transparent encryption between nodes (needs kubeconfig: keys travel on Node objects) */
  encryption?: 'wireguard' | 'none';
  /** the node's underlay interface, where strict mode filters (default eth0) */
  underlayIf?: string;
  /** WireGuard strict mode: pod traffic to other nodes is never sent in plaintext (default true) */
  strictMode?: boolean;
}

export interface AgentDeps {
  datapath: EndpointDatapath;
  /** the maps the control plane writes (policy, prefixes, endpoint flags, ipcache) */
  maps?: Pick<Datapath, 'applyEndpointPolicy' | 'endpointPolicyConverged' | 'ipcache'> &
    Partial<Pick<Datapath, 'lb'>>;
  netlink?: RouteNetlink;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunningAgent {
  socketPath: string;
  manager: EndpointManager;
  routes: NodeRouteReconciler;
  controlPlane: AgentControlPlane | undefined;
  status(): Promise<AgentStatus>;
  stop(): Promise<void>;
}

export const endpointSocketPath = (stateDir: string): string => join(stateDir, 'endpoint.sock');

/** Validates a raw config once and returns it frozen; throws a coded error naming the bad field. */
export function parseAgentConfig(raw: unknown): Readonly<AgentConfig> {
  const c = raw as Partial<AgentConfig>;
  const need = (field: keyof AgentConfig, ok: boolean): void => {
    if (!ok)
      throw Object.assign(new Error(`agent config: ${field} is missing or invalid`), {
        code: 'ISTHMUS_AGENT_CONFIG',
      });
  };
  need('nodeName', typeof c.nodeName === 'string' && c.nodeName !== '');
  need('nodeIP', typeof c.nodeIP === 'string');
  need('podCIDR', typeof c.podCIDR === 'string');
  need('nodes', Array.isArray(c.nodes));
  need('bpffs', typeof c.bpffs === 'string');
  need('stateDir', typeof c.stateDir === 'string');
  need('datapath', c.datapath === undefined || c.datapath === 'bpf' || c.datapath === 'fake');
  need('kubeconfig', c.kubeconfig === undefined || typeof c.kubeconfig === 'string');
  need(
    'cluster',
    c.kubeconfig === undefined
      ? c.cluster === undefined
      : typeof c.cluster?.name === 'string' &&
          Number.isInteger(c.cluster.id) &&
          c.cluster.id >= 1 &&
          c.cluster.id <= 255,
  );
  const nodes = c.nodes!.map(validateNode);
  validateNode({ name: c.nodeName!, underlayIP: c.nodeIP!, podCIDR: c.podCIDR! });
  return Object.freeze({ ...(c as AgentConfig), nodes });
}

/** Starts the agent's parts in order; a failed start stops what already started. */
export async function startAgent(
  config: Readonly<AgentConfig>,
  deps: AgentDeps,
): Promise<RunningAgent> {
  mkdirSync(config.stateDir, { recursive: true });
  enableForwarding();
  const log = deps.log ?? (() => {});
  const encryption = await startEncryption(config, log);
  const netlink = deps.netlink ?? new IprouteNetlink();
  const others = config.nodes.filter((n) => n.name !== config.nodeName).map((n) => n.underlayIP);
  const routes = new NodeRouteReconciler(
    config.nodeName,
    encryption?.guardNativeRoutes(netlink, others) ?? netlink,
    {
      intervalMs: config.routeIntervalMs ?? 10_000,
      onError: (err) => log('route reconcile failed', { error: String(err) }),
    },
  );
  let mesh: AgentMesh | undefined;
  const controlPlane = makeControlPlane(
    config,
    deps,
    routes,
    routerIPOf(config.podCIDR),
    async () => {
      if (config.clustermesh && config.cluster && controlPlane)
        mesh = await startMeshSynced(
          config.cluster,
          config.clustermesh,
          controlPlane,
          log,
          encryption,
        );
    },
  );
  // With a control plane, endpoints go through it: identity, row, policy, endpoint object.
  const manager = new EndpointManager({
    podCIDR: config.podCIDR,
    stateDir: config.stateDir,
    datapath: controlPlane?.endpoints ?? deps.datapath,
    log,
  });
  if (encryption && controlPlane) encryption.followIpcache(controlPlane.meshTargets().ipcache);
  if (controlPlane) {
    controlPlane.endpoints.setManager(manager);
    controlPlane.endpoints.restoring = true;
  }
  const restored = await manager.restore();
  if (controlPlane) controlPlane.endpoints.restoring = false;
  log('endpoints restored', restored);
  await routes.start(config.nodes);
  const status = async (): Promise<AgentStatus> => {
    const s = controlPlane ? await controlPlane.status() : await staticStatus(config, manager);
    const withMesh = mesh ? { ...s, clustermesh: mesh.status() } : s;
    return encryption ? { ...withMesh, encryption: await encryption.status() } : withMesh;
  };
  const socketPath = endpointSocketPath(config.stateDir);
  const server = new EndpointServer(socketPath, manager, status);
  try {
    await server.start();
  } catch (err) {
    routes.stop();
    throw Object.assign(new Error(`cannot listen on ${socketPath}`, { cause: err }), {
      code: 'ISTHMUS_AGENT_LISTEN',
    });
  }
  // The socket answers pings meanwhile; ADDs wait inside the control plane until it is synced.
  if (controlPlane) {
    try {
      await controlPlane.start();
    } catch (err) {
      await server.stop();
      routes.stop();
      await mesh?.stop();
      await controlPlane.stop();
      throw Object.assign(new Error('agent control plane failed to start', { cause: err }), {
        code: 'ISTHMUS_AGENT_CONTROL_PLANE',
      });
    }
  }
  return {
    socketPath,
    manager,
    routes,
    controlPlane,
    status,
    async stop() {
      await server.stop();
      await mesh?.stop();
      await encryption?.stop();
      routes.stop();
      await controlPlane?.stop();
    },
  };
}

/** WireGuard between this cluster's nodes when configured; keys are exchanged on Node objects. */
async function startEncryption(
  config: Readonly<AgentConfig>,
  log: (msg: string, fields?: Record<string, unknown>) => void,
): Promise<NodeEncryption | undefined> {
  if (config.encryption !== 'wireguard') return undefined;
  if (!config.kubeconfig || !config.cluster)
    throw Object.assign(
      new Error('agent config: encryption: wireguard needs kubeconfig and cluster'),
      {
        code: 'ISTHMUS_AGENT_CONFIG',
      },
    );
  return NodeEncryption.start(
    {
      cluster: config.cluster.name,
      nodeName: config.nodeName,
      stateDir: config.stateDir,
      bpffs: config.bpffs,
      underlayIf: config.underlayIf ?? 'eth0',
      strict: config.strictMode !== false,
      awaitMesh: !!config.clustermesh,
      log,
    },
    new KubeClient(loadKubeConfig(config.kubeconfig)),
  );
}

function makeControlPlane(
  config: Readonly<AgentConfig>,
  deps: AgentDeps,
  routes: NodeRouteReconciler,
  routerIP: string,
  beforeIpcachePrune: () => Promise<void>,
): AgentControlPlane | undefined {
  if (!config.kubeconfig || !config.cluster) return undefined;
  if (!deps.maps)
    throw Object.assign(
      new Error('agent config names a kubeconfig but no datapath maps were given'),
      {
        code: 'ISTHMUS_AGENT_CONFIG',
      },
    );
  return new AgentControlPlane(
    {
      nodeName: config.nodeName,
      nodeIP: config.nodeIP,
      routerIP,
      cluster: config.cluster,
      kubeconfig: config.kubeconfig,
      fullPassIntervalMs: config.fullPassIntervalMs ?? 10_000,
    },
    {
      maps: deps.maps,
      inner: deps.datapath,
      routes,
      staticNodes: config.nodes,
      log: (msg, fields) => deps.log?.(msg, fields),
      beforeIpcachePrune,
    },
  );
}

/** Bound on waiting for the remotes' initial sync at start (an unreachable remote must not block). */
const MESH_SYNC_WAIT_MS = 10_000;

/** Starts ClusterMesh and waits until every remote is ready (or refused, or the wait ends). */
async function startMeshSynced(
  cluster: { name: string; id: number },
  files: { bundleDir: string; caFile: string },
  controlPlane: AgentControlPlane,
  log: (msg: string, fields?: Record<string, unknown>) => void,
  encryption?: NodeEncryption,
): Promise<AgentMesh> {
  const targets = { ...controlPlane.meshTargets(), ...(encryption && { encryption }) };
  const mesh = await startAgentMesh({ cluster, ...files }, targets);
  const deadline = Date.now() + MESH_SYNC_WAIT_MS;
  const settled = () =>
    mesh.status().remotes.every((r) => r.ready || r.state === 'refused' || r.state === 'stopped');
  while (!settled() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (!settled())
    log('clustermesh: remotes not synced at start, continuing', {
      pending: mesh
        .status()
        .remotes.filter((r) => !r.ready)
        .map((r) => r.cluster),
    });
  encryption?.meshSynced(); // remote nodes known (or waited for): the merged table may prune
  return mesh;
}

/** Status of an agent without a control plane: endpoints only, nothing to converge on. */
async function staticStatus(
  config: Readonly<AgentConfig>,
  manager: EndpointManager,
): Promise<AgentStatus> {
  return {
    node: config.nodeName,
    cluster: config.cluster?.name ?? '',
    kubernetes: false,
    synced: true,
    converged: true,
    pending: [],
    endpoints: manager.list().map((ep) => ({
      id: ep.id,
      pod: `${ep.podNamespace}/${ep.podName}`,
      ip: ep.ip,
      identity: ep.identity,
      labels: '',
      policyRevision: 0,
      ingressEnforced: false,
      egressEnforced: false,
      converged: true,
    })),
    ipcache: { size: 0, desired: 0, converged: true },
    policies: { enforced: 0, invalid: [] },
  };
}

/** A node forwards between its pods and the underlay; the setting is per network namespace. */
function enableForwarding(): void {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}

/** The node's router IP: the first host address of its pod CIDR (as the endpoint IPAM hands out). */
function routerIPOf(podCIDR: string): string {
  const [net] = ipaddr.parseCIDR(podCIDR);
  const bytes = net.toByteArray();
  bytes[3] = bytes[3]! + 1;
  return ipaddr.fromByteArray(bytes).toString();
}
