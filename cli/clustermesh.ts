// `isthmus clustermesh status|connect|disconnect`. status asks node agents (a lab's nodes, or one
// agent by --socket) for their remote clusters and, in a lab, probes the real path from the node
// to the remote cluster's nodes (route to a remote pod CIDR via its node, and a ping of that node
// from the node's namespace). connect/disconnect pair two clusters' mesh etcds and Secrets
// (agent/clustermesh/connect.ts).
import { Command, Option } from 'commander';
import { endpointSocketPath } from '../agent/daemon.ts';
import type { AgentStatus } from '../agent/daemon/types.ts';
import { runCommand } from '../agent/routing/command.ts';
import type { RemoteNodeRoute } from '../agent/clustermesh/sink.ts';
import type { RemoteStatus } from '../clustermesh/remote/index.ts';
import { RUN_ROOT } from '../integration/lab/config.ts';
import { nodesOf } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import { resolveLabName } from '../integration/lab/supervisor.ts';
import { agentStatus } from './agent.ts';
import {
  connectClusters,
  disconnectClusters,
  type ClusterAccess,
} from '../agent/clustermesh/connect.ts';
import { labClusterAccess } from '../integration/lab/mesh-access.ts';
import { defaultKubeconfig, kubeClusterAccess } from '../agent/clustermesh/kube-access.ts';

class MeshCliError extends Error {
  readonly code = 'ISTHMUS_CLUSTERMESH_CLI';
}

export interface DatapathHealth {
  ok: boolean;
  /** per remote node probed: what was checked and the outcome */
  checks: Array<{ node: string; ip: string; route: boolean; ping: boolean; detail?: string }>;
}

export interface RemoteView extends RemoteStatus {
  /** absent outside a lab (no network namespace to probe from) */
  datapath?: DatapathHealth;
  /** its global-service backends are withdrawn here (not connected for too long) */
  servicesWithdrawn: boolean;
}

export interface NodeMeshStatus {
  node: string;
  cluster: string;
  /** false: the agent runs without a bundle directory */
  configured: boolean;
  remotes: RemoteView[];
  /** clusters whose global-service backends this agent withdrew (remote or already drained) */
  withdrawn: string[];
}

interface Target {
  node: string;
  socket: string;
  netns?: string;
}

async function targets(opts: { socket?: string; node?: string; lab?: string }): Promise<Target[]> {
  if (opts.socket) return [{ node: opts.node ?? opts.socket, socket: opts.socket }];
  const name = await resolveLabName(opts.lab).catch((err: Error) => {
    throw new MeshCliError(`${err.message} (or name an agent with --socket PATH)`);
  });
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record) throw new MeshCliError(`no lab named ${name}: see \`isthmus lab status\``);
  const nodes = nodesOf(record.plan).filter((n) => !opts.node || n.name === opts.node);
  if (!nodes.length) throw new MeshCliError(`lab ${name} has no node ${opts.node}`);
  return nodes.map((n) => ({
    node: n.name,
    socket: endpointSocketPath(n.stateDir),
    netns: n.netns,
  }));
}

/** Route and ping from the node's namespace to every routed node of `cluster`. */
async function probeDatapath(
  netns: string,
  nodes: RemoteNodeRoute[],
  timeoutMs: number,
): Promise<DatapathHealth> {
  const checks = await Promise.all(
    nodes.map(async (n) => {
      const inNs = ['nsenter', `--net=/run/netns/${netns}`, '--'];
      const podIp = n.podCIDR.split('/')[0]!.replace(/\.0$/, '.1');
      const r = await runCommand([...inNs, 'ip', '-j', 'route', 'get', podIp]);
      const via =
        r.code === 0 ? (JSON.parse(r.stdout) as Array<{ gateway?: string }>)[0] : undefined;
      const route = via?.gateway === n.underlayIP;
      const wait = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
      const p = await runCommand([
        ...inNs,
        'ping',
        '-n',
        '-q',
        '-c',
        '1',
        '-W',
        wait,
        n.underlayIP,
      ]);
      const ping = p.code === 0;
      return {
        node: n.node,
        ip: n.underlayIP,
        route,
        ping,
        ...(!route && { detail: `no route to ${n.podCIDR} via ${n.underlayIP}` }),
        ...(route && !ping && { detail: `${n.underlayIP} does not answer` }),
      };
    }),
  );
  return { ok: checks.some((c) => c.route && c.ping), checks };
}

export async function clustermeshStatus(
  opts: { socket?: string; node?: string; lab?: string },
  probeTimeoutMs = 1000,
): Promise<NodeMeshStatus[]> {
  const out: NodeMeshStatus[] = [];
  for (const t of await targets(opts)) {
    const s: AgentStatus = await agentStatus(t.socket).catch((err: Error) => {
      throw new MeshCliError(`agent of ${t.node}: ${err.message}`);
    });
    const mesh = s.clustermesh;
    const remotes: RemoteView[] = [];
    for (const r of mesh?.remotes ?? []) {
      const nodes = mesh!.nodes.filter((n) => n.cluster === r.cluster);
      const view = { ...r, servicesWithdrawn: mesh!.withdrawn.includes(r.cluster) };
      remotes.push(
        t.netns ? { ...view, datapath: await probeDatapath(t.netns, nodes, probeTimeoutMs) } : view,
      );
    }
    const withdrawn = [...(mesh?.withdrawn ?? [])];
    out.push({
      node: t.node,
      cluster: s.cluster,
      configured: mesh !== undefined,
      remotes,
      withdrawn,
    });
  }
  return out;
}

/** Ready: connected, every kind synced and, where probed, the datapath reaches the remote. */
export const remoteReady = (r: RemoteView): boolean => r.ready && (r.datapath?.ok ?? true);

export function formatStatus(nodes: NodeMeshStatus[]): string {
  const lines: string[] = [];
  for (const n of nodes) {
    lines.push(
      `node ${n.node} (cluster ${n.cluster})${n.configured ? '' : ': no clustermesh configured'}`,
    );
    if (n.configured && !n.remotes.length)
      lines.push('  no remote clusters (bundle directory empty)');
    for (const r of n.remotes) {
      const synced = Object.entries(r.synced)
        .map(([k, v]) => `${k}${v ? '' : '(no)'}`)
        .join(',');
      lines.push(
        `  ${r.cluster} (id ${r.clusterId}): ${r.state}${r.reason ? ` — ${r.reason}` : ''}; ready: ${remoteReady(r)}`,
        `    synced: ${synced}; identities ${r.counts.identities}, endpoints ${r.counts.endpoints}, nodes ${r.counts.nodes}, services ${r.counts.services}; last update ${r.lastUpdateAgeMs === undefined ? 'never' : `${Math.round(r.lastUpdateAgeMs / 1000)}s ago`}; connections ${r.connections}`,
      );
      if (r.lastError)
        lines.push(
          `    last error: ${r.lastError.code}: ${r.lastError.message} (${r.lastError.at})`,
        );
      const rejected = Object.entries(r.rejected);
      if (rejected.length)
        lines.push(`    rejected: ${rejected.map(([k, v]) => `${k}=${v}`).join(', ')}`);
      if (r.servicesWithdrawn)
        lines.push('    global services: backends WITHDRAWN (not connected for too long)');
      if (r.datapath)
        lines.push(
          `    datapath: ${r.datapath.ok ? 'ok' : 'NOT reachable'} (${
            r.datapath.checks
              .map((c) => `${c.node} ${c.ip}: ${c.route && c.ping ? 'ok' : c.detail}`)
              .join('; ') || 'no remote nodes known'
          })`,
        );
    }
    const drained = n.withdrawn.filter((c) => !n.remotes.some((r) => r.cluster === c));
    if (drained.length)
      lines.push(`  global-service backends withdrawn of disconnected: ${drained.join(', ')}`);
  }
  return lines.join('\n');
}

export function register(program: Command): void {
  const mesh = program
    .command('clustermesh')
    .description('ClusterMesh: remote clusters of each agent, connect and disconnect clusters');
  mesh
    .command('status')
    .description(
      'Per node agent and remote cluster: connection, sync, counts, rejects, datapath health',
    )
    .option('--node <name>', 'one node of the lab (default: every node)')
    .option('--lab <name>', 'which lab (default: the only one running)')
    .option('--socket <path>', "an agent's endpoint socket, outside a lab")
    .addOption(
      new Option('--output <format>', 'output format').choices(['json', 'table']).default('table'),
    )
    .addHelpText(
      'after',
      '\nExit code 3 when a remote cluster is not ready (or none is configured), 1 on errors.',
    )
    .action(async (opts: { node?: string; lab?: string; socket?: string; output: string }) => {
      await cliAction(async () => {
        const nodes = await clustermeshStatus(opts);
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify({ nodes }, null, 2) + '\n'
            : formatStatus(nodes) + '\n',
        );
        const notReady = nodes.some(
          (n) => !n.configured || !n.remotes.length || n.remotes.some((r) => !remoteReady(r)),
        );
        if (notReady) process.exitCode = 3;
      });
    });
  for (const verb of ['connect', 'disconnect'] as const) registerPairing(mesh, verb);
}

interface PairingOptions {
  lab?: string;
  context?: string;
  destinationContext?: string;
  kubeconfig?: string;
  destinationKubeconfig?: string;
}

const PAIRING_HELP = {
  connect:
    "Connects two clusters both ways: on each cluster's mesh etcd a read-only user and client certificate for the other, and in each cluster's Secret kube-system/cilium-clustermesh the other's signed bundle (agents pick it up without restart). Connecting again re-issues the bundles.",
  disconnect:
    "Disconnects two clusters: removes each one's bundle from the other's Secret kube-system/cilium-clustermesh (agents drain it) and revokes its etcd user there (its certificate reads nothing any more). Disconnecting clusters that are not connected says so and succeeds.",
};

function registerPairing(mesh: Command, verb: 'connect' | 'disconnect'): void {
  mesh
    .command(`${verb} [clusterA] [clusterB]`)
    .description(PAIRING_HELP[verb])
    .option(
      '--context <name>',
      'kubeconfig context of the first cluster (default: current context)',
    )
    .option('--destination-context <name>', 'kubeconfig context of the second cluster')
    .option(
      '--kubeconfig <file>',
      'kubeconfig of --context (default: $KUBECONFIG or ~/.kube/config)',
    )
    .option(
      '--destination-kubeconfig <file>',
      'kubeconfig of --destination-context (default: the --kubeconfig file)',
    )
    .option('--lab <name>', 'with clusterA clusterB: clusters of this lab (default: the only one)')
    .addHelpText(
      'after',
      `
Real clusters need only the two contexts: each must run Isthmus with clustermesh enabled, which
puts into kube-system the ConfigMap isthmus-clustermesh (cluster-name, cluster-id, endpoints,
optional admin-endpoint, server-name), the mesh CA Secret cilium-ca and the root client
certificate Secret clustermesh-apiserver-admin-cert; both clusters share one mesh CA, and their
mesh etcd endpoints must be reachable from where this command runs.

Examples:
  isthmus clustermesh ${verb} --context kind-c1 --destination-context kind-c2
  isthmus clustermesh ${verb} c1 c2 --lab demo        (lab clusters, by name)`,
    )
    .action(async (a: string | undefined, b: string | undefined, opts: PairingOptions) => {
      await cliAction(async () => {
        const access = await pairingAccess(a, b, opts);
        try {
          const [x, y] = access;
          const done =
            verb === 'connect' ? await connectClusters(x, y) : await disconnectClusters(x, y);
          process.stdout.write(done.map((l) => `${l}\n`).join(''));
        } finally {
          for (const c of access) c.close();
        }
      });
    });
}

async function pairingAccess(
  a: string | undefined,
  b: string | undefined,
  opts: PairingOptions,
): Promise<[ClusterAccess, ClusterAccess]> {
  if (a !== undefined || b !== undefined) {
    if (a === undefined || b === undefined || opts.context || opts.destinationContext)
      throw new MeshCliError(
        'name two lab clusters (clusterA clusterB), or give --context and --destination-context, not both',
      );
    const access = await labClusterAccess(await resolveLabName(opts.lab), [a, b]);
    return access as [ClusterAccess, ClusterAccess];
  }
  if (!opts.destinationContext)
    throw new MeshCliError(
      'give --destination-context (and --context, default the current one), or two lab cluster names',
    );
  const file = opts.kubeconfig ?? defaultKubeconfig();
  const first = await kubeClusterAccess(file, opts.context);
  try {
    const second = await kubeClusterAccess(
      opts.destinationKubeconfig ?? file,
      opts.destinationContext,
    );
    return [first, second];
  } catch (err) {
    first.close();
    throw err;
  }
}

async function cliAction(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const e = err as Error & { code?: string };
    if (!(err instanceof MeshCliError) && !e.code) throw err;
    process.stderr.write(`isthmus: ${e.message}\n`);
    process.exitCode = 1;
  }
}
