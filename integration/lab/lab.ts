// The lab: clusters of nodes and pods built from network namespaces (DESIGN.md "The lab").
//
//   <name>-underlay   bridge br0; every other lab host hangs off it with a veth (eth0 inside)
//   <name>-world      a host on the underlay outside every cluster
//   <name>-<c>-cp     a control-plane host per cluster (etcd, API servers come later)
//   <name>-<c>-nodeN  a node: its agent runs here (nsenter --net), bpffs at <runDir>/<node>/bpf
//   <name>-<c>-<ns>-<pod>  a pod, attached by the CNI plugin through its node's agent
//
// The root namespace gets no interface, address or route. Teardown (downLab) works from the
// name alone, so it also cleans up after a crashed or half-finished start, and is idempotent.
import { bundleDirOf, meshEnabled, meshPaths, startLabMesh } from './mesh.ts';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { endpointSocketPath, type AgentConfig } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { mustRun, runCommand } from '../../agent/routing/command.ts';
import { RUN_ROOT, type LabPlan, type NodePlan } from './config.ts';
import {
  addNetns,
  deleteNetns,
  ipBatch,
  linkToUnderlay,
  listNetns,
  mountsUnder,
  netnsPath,
} from './netns.ts';
import { controlPlanePaths, restartApiServer, startControlPlanes } from './control-plane.ts';
import { kubeletAlive, logSize, spawnKubelet, startKubelets, waitForKubelet } from './kubelets.ts';
import { createPod, destroyPod, type PodSpec } from './pods.ts';
import { destroyTunnels } from './encryption.ts';
import { endProcess, pidsMatching, spawnDetached } from './processes.ts';
import {
  readRecord,
  nodeEntry,
  repoRoot,
  writeRecord,
  type LabPod,
  type LabRecord,
} from './record.ts';

export class LabError extends Error {
  constructor(
    message: string,
    readonly code: 'ISTHMUS_LAB_EXISTS' | 'ISTHMUS_LAB_START' | 'ISTHMUS_LAB_POD',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface UpOptions {
  /** test hook: throw after this step, to exercise cleanup of a failed start */
  failAfter?: 'namespaces' | 'mounts' | 'agents';
  /** control plane (etcd + API server) and kubelet per cluster; default true */
  kubernetes?: boolean;
  /** PID of the detached supervisor running this Lab.up (recorded for `lab down`) */
  supervisorPid?: number;
  /** progress lines while the lab starts (the CLI prints them) */
  onProgress?: (line: string) => void;
  agentReadyTimeoutMs?: number;
  /** period of each agent's full route pass (agent default 10 s) */
  routeIntervalMs?: number;
  /**
   * Which nodes each agent routes to: its own cluster's (default; remote clusters' nodes arrive
   * through the mesh) or every node of the lab (static cross-cluster routing without the mesh).
   */
  nodeTable?: 'cluster' | 'lab';
  /** the agents' datapath: "fake" (default) or "bpf" (the kernel programs on every pod veth) */
  datapath?: 'bpf' | 'fake';
  /** period of each agent's policy/ipcache full pass (read back, repair drift; agent default 10 s) */
  fullPassIntervalMs?: number;
  /** ClusterMesh between the clusters (mesh.ts); default: with Kubernetes, 2+ clusters, nodeTable 'cluster' */
  mesh?: boolean;
  /** agents withdraw a disconnected remote cluster's service backends after this (default 5 min) */
  meshServiceWithdrawalMs?: number;
  /** nodes whose agent starts only with `lab.joinNode` (a node joining a running cluster): the
   * network and the Node object exist, no agent, key or pod yet */
  deferAgents?: string[];
}

const withMesh = (plan: LabPlan, opts: UpOptions): boolean =>
  opts.kubernetes !== false && opts.nodeTable !== 'lab' && (opts.mesh ?? meshEnabled(plan));

export class Lab {
  private constructor(private readonly record: LabRecord) {}

  get plan(): LabPlan {
    return this.record.plan;
  }

  get pods(): readonly LabPod[] {
    return this.record.pods;
  }

  /** Builds the lab; a failed start removes everything it created and rethrows. */
  static async up(plan: LabPlan, opts: UpOptions = {}): Promise<Lab> {
    const existing = (await listNetns()).filter((n) => n.startsWith(`${plan.name}-`));
    if (existing.length)
      throw new LabError(
        `lab ${plan.name} already exists (${existing.length} namespaces): run \`isthmus lab down\` first`,
        'ISTHMUS_LAB_EXISTS',
      );
    const record: LabRecord = {
      plan,
      agents: [],
      pods: [],
      ready: false,
      ...(opts.supervisorPid && { supervisorPid: opts.supervisorPid }),
    };
    const progress = opts.onProgress ?? (() => {});
    try {
      await mustRun(['make', '-s', '-C', join(repoRoot(), 'integration/lab/tools')]);
      mkdirSync(plan.runDir, { recursive: true });
      writeRecord(record);
      progress(
        `network: underlay, world, ${plan.clusters.length} control planes, ${nodesOf(plan).length} nodes`,
      );
      await buildNetwork(plan);
      if (opts.failAfter === 'namespaces') throw new Error('simulated failure after namespaces');
      for (const node of nodesOf(plan)) await mountBpffs(node);
      if (opts.failAfter === 'mounts') throw new Error('simulated failure after mounts');
      if (opts.kubernetes !== false) await startControlPlanes(record, progress);
      if (withMesh(plan, opts)) await startLabMesh(plan, progress);
      progress('agents: starting one per node');
      const deferred = (n: NodePlan) => opts.deferAgents?.includes(n.name) === true;
      for (const node of nodesOf(plan)) {
        writeAgentConfig(plan, node, opts);
        if (deferred(node)) continue;
        record.agents.push({ node: node.name, pid: spawnAgent(node) });
        writeRecord(record);
      }
      await Promise.all(
        nodesOf(plan)
          .filter((node) => !deferred(node))
          .map((node) => waitForAgent(node, opts.agentReadyTimeoutMs ?? 30_000)),
      );
      if (opts.failAfter === 'agents') throw new Error('simulated failure after agents');
      if (opts.kubernetes !== false) await startKubelets(record, progress);
      record.ready = true;
      writeRecord(record);
      progress('ready');
      return new Lab(record);
    } catch (err) {
      await downLab(plan.name);
      throw new LabError(
        `lab ${plan.name} failed to start and was removed: ${(err as Error).message}`,
        'ISTHMUS_LAB_START',
        { cause: err },
      );
    }
  }

  /** Reattaches to a running lab from its record (e.g. for `lab status` in another process). */
  static attach(name: string): Lab | undefined {
    const record = readRecord(`${RUN_ROOT}/${name}`);
    return record && new Lab(record);
  }

  node(name: string): NodePlan {
    const node = nodesOf(this.plan).find((n) => n.name === name);
    if (!node) throw new LabError(`lab ${this.plan.name} has no node ${name}`, 'ISTHMUS_LAB_POD');
    return node;
  }

  async addPod(spec: PodSpec): Promise<LabPod> {
    const [pod] = await this.addPods([spec], 1);
    return pod!;
  }

  /**
   * Creates pods, `concurrency` at a time (the CNI plugin is a process per pod, as with kubelet).
   * Pods without a node go to the least loaded node of their cluster. If any pod fails, the ones
   * that succeeded stay (and are recorded) and the first error is thrown.
   */
  async addPods(specs: PodSpec[], concurrency = 4): Promise<LabPod[]> {
    const batchLoad = new Map<string, number>();
    const placed = specs.map((spec) => ({
      spec: { ...spec, node: this.placePod(spec, specs, batchLoad) },
    }));
    for (const [node, n] of batchLoad)
      this.pendingLoad.set(node, (this.pendingLoad.get(node) ?? 0) + n);
    const created: LabPod[] = new Array(specs.length);
    let next = 0;
    let firstError: unknown;
    const worker = async () => {
      while (next < placed.length && firstError === undefined) {
        const index = next++;
        const { spec } = placed[index]!;
        try {
          created[index] = await createPod(this.plan.name, this.node(spec.node), spec);
          this.record.pods.push(created[index]!);
          writeRecord(this.record);
        } catch (err) {
          firstError ??= err;
        } finally {
          this.pendingLoad.set(spec.node, (this.pendingLoad.get(spec.node) ?? 1) - 1);
        }
      }
      // pods of the batch that never started are no longer pending
      while (next < placed.length) {
        const { spec } = placed[next++]!;
        this.pendingLoad.set(spec.node, (this.pendingLoad.get(spec.node) ?? 1) - 1);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
    if (firstError !== undefined) throw firstError;
    return created;
  }

  /** pods placed on a node but not created yet, so concurrent batches spread evenly */
  private readonly pendingLoad = new Map<string, number>();

  private placePod(spec: PodSpec, batch: PodSpec[], batchLoad: Map<string, number>): string {
    const cluster = this.plan.clusters.find((c) => c.name === spec.cluster);
    if (!cluster)
      throw new LabError(`lab ${this.plan.name} has no cluster ${spec.cluster}`, 'ISTHMUS_LAB_POD');
    const same = (p: { cluster: string; namespace: string; name: string }) =>
      p.cluster === spec.cluster && p.namespace === spec.namespace && p.name === spec.name;
    if (this.record.pods.some(same) || batch.filter(same).length > 1) {
      throw new LabError(
        `pod ${spec.cluster}/${spec.namespace}/${spec.name} already exists`,
        'ISTHMUS_LAB_POD',
      );
    }
    const node = spec.node
      ? this.node(spec.node)
      : leastLoaded(cluster.nodes, this.record.pods, this.pendingLoad);
    if (node.cluster !== cluster.name)
      throw new LabError(`node ${node.name} is not in cluster ${cluster.name}`, 'ISTHMUS_LAB_POD');
    this.pendingLoad.set(node.name, (this.pendingLoad.get(node.name) ?? 0) + 1);
    return node.name;
  }

  async removePod(pod: LabPod): Promise<void> {
    await destroyPod(this.plan.name, this.node(pod.node), pod);
    this.record.pods = this.record.pods.filter(
      (p) => p !== pod && p.containerId !== pod.containerId,
    );
    writeRecord(this.record);
  }

  /** Ends a node's agent and starts a new one on the same state dir and bpffs (restart test). */
  async restartAgent(nodeName: string, readyTimeoutMs = 30_000): Promise<void> {
    const node = this.node(nodeName);
    const entry = this.record.agents.find((a) => a.node === nodeName);
    if (entry) await endProcess(entry.pid, `${this.plan.runDir}/`);
    const pid = spawnAgent(node); // same config file as before
    this.record.agents = [
      ...this.record.agents.filter((a) => a.node !== nodeName),
      { node: nodeName, pid },
    ];
    writeRecord(this.record);
    await waitForAgent(node, readyTimeoutMs);
  }

  /** Starts the agent of a node held back by `deferAgents`: the node joins the running cluster. */
  async joinNode(nodeName: string, readyTimeoutMs = 30_000): Promise<void> {
    await this.restartAgent(nodeName, readyTimeoutMs); // no agent runs yet: this only starts one
  }

  /** Ends a cluster's API server and starts it again over the same etcd (restart tests). */
  async restartApiServer(clusterName: string): Promise<void> {
    const cluster = this.plan.clusters.find((c) => c.name === clusterName);
    const entry = this.record.controlPlanes?.find((c) => c.cluster === clusterName);
    if (!cluster || !entry)
      throw new LabError(
        `lab ${this.plan.name} has no control plane ${clusterName}`,
        'ISTHMUS_LAB_POD',
      );
    await endProcess(entry.apiServerPid, `${this.plan.runDir}/`);
    entry.apiServerPid = await restartApiServer(this.plan, cluster);
    writeRecord(this.record);
  }

  /** Starts again every cluster kubelet whose process is gone (the supervisor's watchdog). */
  async reviveKubelets(): Promise<string[]> {
    const revived: string[] = [];
    for (const cluster of this.plan.clusters) {
      const entry = this.record.kubelets?.find((k) => k.cluster === cluster.name);
      if (!entry || kubeletAlive(this.plan, cluster, entry.pid)) continue;
      const from = logSize(controlPlanePaths(this.plan, cluster).kubeletLog);
      entry.pid = spawnKubelet(this.plan, cluster);
      writeRecord(this.record);
      await waitForKubelet(this.plan, cluster, entry.pid, from, 30_000);
      revived.push(cluster.name);
    }
    return revived;
  }

  /** The path of a cluster's kubeconfig (API server over TCP, for lab namespaces). */
  kubeconfig(cluster: string): string {
    const c = this.plan.clusters.find((x) => x.name === cluster);
    if (!c)
      throw new LabError(`lab ${this.plan.name} has no cluster ${cluster}`, 'ISTHMUS_LAB_POD');
    return controlPlanePaths(this.plan, c).kubeconfig;
  }

  agentPid(nodeName: string): number | undefined {
    return this.record.agents.find((a) => a.node === nodeName)?.pid;
  }

  async down(): Promise<void> {
    await downLab(this.plan.name);
  }
}

/**
 * Removes every trace of lab `name`: its processes (by PID, found through the record and through
 * command lines naming the lab's paths), namespaces, mounts and run directory. Idempotent.
 */
export async function downLab(name: string): Promise<void> {
  const runDir = `${RUN_ROOT}/${name}`;
  const record = readRecord(runDir);
  const markers = [`${runDir}/`, `/run/netns/${name}-`];
  // The supervisor first, so its watchdog cannot start a kubelet again while the rest ends.
  for (const pid of pidsMatching([`${runDir}/${SUPERVISOR_MARKER}`]))
    await endProcess(pid, `${runDir}/`);
  const pids = new Set([
    ...(record?.agents.map((a) => a.pid) ?? []),
    ...(record?.kubelets?.map((k) => k.pid) ?? []),
    ...(record?.controlPlanes?.flatMap((c) => [c.etcdPid, c.apiServerPid]) ?? []),
    ...(record?.pods.flatMap((p) => p.echoPid ?? []) ?? []),
    ...pidsMatching(markers),
  ]);
  await Promise.all([...pids].map((pid) => Promise.all(markers.map((m) => endProcess(pid, m)))));
  // wireguard-go daemons outlive agents (and would keep node namespaces alive): end them by PID
  if (record) await destroyTunnels(record.plan);
  const namespaces = (await listNetns()).filter((n) => n.startsWith(`${name}-`));
  for (const ns of namespaces) await deleteNetns(ns);
  const mounts = mountsUnder(runDir, readFileSync('/proc/mounts', 'utf8'));
  for (const m of mounts.reverse()) await mustRun(['umount', m.target]);
  rmSync(runDir, { recursive: true, force: true });
}

/** The file the detached supervisor (`isthmus lab up`) is started with; marks its command line. */
export const SUPERVISOR_MARKER = 'supervisor-plan.json';

export const nodesOf = (plan: LabPlan): NodePlan[] => plan.clusters.flatMap((c) => c.nodes);

async function buildNetwork(plan: LabPlan): Promise<void> {
  const { underlay } = plan;
  await addNetns(underlay.netns);
  await ipBatch(underlay.netns, [
    `link add ${underlay.bridge} type bridge`,
    `link set dev ${underlay.bridge} up`,
  ]);
  const hosts = [plan.world, ...plan.clusters.flatMap((c) => [c.controlPlane, ...c.nodes])];
  for (const host of hosts) {
    await addNetns(host.netns);
    await linkToUnderlay(underlay.netns, underlay.bridge, {
      host: host.netns,
      underlayIf: host.underlayIf,
      ip: host.ip,
      prefixLen: underlay.prefixLen,
    });
  }
  // Hosts outside the clusters reach pods through the pods' nodes (agents route node to node).
  const podRoutes = nodesOf(plan).map((n) => `route add ${n.podCIDR} via ${n.ip}`);
  for (const host of [plan.world, ...plan.clusters.map((c) => c.controlPlane)])
    await ipBatch(host.netns, podRoutes);
}

/** bpffs per node, mounted from the root mount namespace so it outlives every agent. */
async function mountBpffs(node: NodePlan): Promise<void> {
  mkdirSync(node.bpffs, { recursive: true });
  mkdirSync(node.stateDir, { recursive: true });
  await mustRun(['mount', '-t', 'bpf', 'bpf', node.bpffs]);
}

function writeAgentConfig(plan: LabPlan, node: NodePlan, opts: UpOptions): void {
  const peers =
    opts.nodeTable === 'lab'
      ? nodesOf(plan)
      : plan.clusters.find((c) => c.name === node.cluster)!.nodes;
  const config: AgentConfig = {
    ...(opts.routeIntervalMs !== undefined && { routeIntervalMs: opts.routeIntervalMs }),
    ...(opts.datapath && { datapath: opts.datapath }),
    ...(opts.fullPassIntervalMs !== undefined && { fullPassIntervalMs: opts.fullPassIntervalMs }),
    ...(opts.kubernetes !== false && agentKubernetes(plan, node)),
    // WireGuard keys travel on Node objects, so encryption needs the cluster's API server
    ...(opts.kubernetes !== false && { encryption: plan.encryption }),
    ...(withMesh(plan, opts) && {
      clustermesh: {
        bundleDir: bundleDirOf(node),
        caFile: meshPaths(plan, plan.clusters[0]!).caFile,
        ...(opts.meshServiceWithdrawalMs !== undefined && {
          serviceWithdrawalMs: opts.meshServiceWithdrawalMs,
        }),
      },
    }),
    nodeName: node.name,
    nodeIP: node.ip,
    podCIDR: node.podCIDR,
    nodes: peers.map((n) => ({ name: n.name, underlayIP: n.ip, podCIDR: n.podCIDR })),
    bpffs: node.bpffs,
    stateDir: node.stateDir,
  };
  writeFileSync(join(node.dir, 'agent.yaml'), YAML.stringify(config));
}

/** The agent's control plane: its cluster's API server (kubeconfig over the underlay). */
function agentKubernetes(
  plan: LabPlan,
  node: NodePlan,
): Pick<AgentConfig, 'kubeconfig' | 'cluster'> {
  const cluster = plan.clusters.find((c) => c.name === node.cluster)!;
  return {
    kubeconfig: controlPlanePaths(plan, cluster).kubeconfig,
    cluster: { name: cluster.name, id: cluster.id },
  };
}

/** Starts the node's agent inside the node's network namespace only (as with hostNetwork). */
function spawnAgent(node: NodePlan): number {
  const configFile = join(node.dir, 'agent.yaml');
  const root = repoRoot();
  const argv = [
    'nsenter',
    `--net=${netnsPath(node.netns)}`,
    '--',
    ...nodeEntry('agent/main.ts'),
    '--config',
    configFile,
  ];
  return spawnDetached(argv, join(node.dir, 'agent.log'), root).pid;
}

async function waitForAgent(node: NodePlan, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const socket = endpointSocketPath(node.stateDir);
  for (;;) {
    const answer = await callAgent(socket, { op: 'ping' }, 2000).catch(() => undefined);
    if (answer?.ok) return;
    if (Date.now() > deadline) {
      const log = await runCommand(['tail', '-n', '20', join(node.dir, 'agent.log')]);
      throw new Error(`agent of ${node.name} not ready after ${timeoutMs} ms; log:\n${log.stdout}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function leastLoaded(nodes: NodePlan[], pods: LabPod[], pending: Map<string, number>): NodePlan {
  const load = (n: NodePlan) =>
    pods.filter((p) => p.node === n.name).length + (pending.get(n.name) ?? 0);
  return nodes.reduce((best, n) => (load(n) < load(best) ? n : best));
}
