// The node agent, as far as it exists today: the endpoint manager behind its unix socket and the
// node route reconciler, for one node. Runs inside the node's network namespace (hostNetwork).
// The datapath is injected; until agent/datapath is wired in, main.ts passes the in-memory fake.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
}

export interface AgentDeps {
  datapath: EndpointDatapath;
  netlink?: RouteNetlink;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunningAgent {
  socketPath: string;
  manager: EndpointManager;
  routes: NodeRouteReconciler;
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
  const manager = new EndpointManager({
    podCIDR: config.podCIDR,
    stateDir: config.stateDir,
    datapath: deps.datapath,
    ...(deps.log && { log: deps.log }),
  });
  const restored = await manager.restore();
  deps.log?.('endpoints restored', restored);
  const routes = new NodeRouteReconciler(config.nodeName, deps.netlink ?? new IprouteNetlink(), {
    intervalMs: config.routeIntervalMs ?? 10_000,
    onError: (err) => deps.log?.('route reconcile failed', { error: String(err) }),
  });
  await routes.start(config.nodes);
  const socketPath = endpointSocketPath(config.stateDir);
  const server = new EndpointServer(socketPath, manager);
  try {
    await server.start();
  } catch (err) {
    routes.stop();
    throw Object.assign(new Error(`cannot listen on ${socketPath}`, { cause: err }), {
      code: 'ISTHMUS_AGENT_LISTEN',
    });
  }
  return {
    socketPath,
    manager,
    routes,
    async stop() {
      await server.stop();
      routes.stop();
    },
  };
}

/** A node forwards between its pods and the underlay; the setting is per network namespace. */
function enableForwarding(): void {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
}
