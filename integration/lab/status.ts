// `lab status` and `lab probe` as library calls: the lab's state in DESIGN.md's JSON shape, and
// real-traffic probes between every ordered pair of pods in the reachability JSON shape.
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { nodeEncryption } from './encryption.ts';
import { readPodState } from '../kubelet/state.ts';
import { RUN_ROOT } from './config.ts';
import { apiHealthy, controlPlanePaths } from './control-plane.ts';
import { kubeletAlive } from './kubelets.ts';
import { probe, type ProbeOptions, type ProbeProtocol } from './probe.ts';
import { readRecord, type LabPod, type LabRecord } from './record.ts';

/** Every pod of the lab: those added through Lab.addPod and those the kubelets run. */
export function labPods(record: LabRecord): LabPod[] {
  const fromKubelets = record.plan.clusters.flatMap((c) =>
    readPodState(controlPlanePaths(record.plan, c).kubeletState).map(
      ({ uid: _uid, ...pod }) => pod,
    ),
  );
  return [...record.pods, ...fromKubelets];
}

export interface LabStatus {
  name: string;
  ready: boolean;
  underlay: { netns: string; cidr: string };
  world: { netns: string; ip: string };
  clusters: Array<{
    name: string;
    id: number;
    ready: boolean;
    podCIDR: string;
    serviceCIDR: string;
    controlPlane: {
      netns: string;
      ip: string;
      /** API server `ip:port` (from lab namespaces), unix socket and kubeconfig */
      apiServer?: { address: string; socket: string; kubeconfig: string; ready: boolean };
      kubelet?: { pid: number; ready: boolean };
    };
    nodes: Array<{
      name: string;
      netns: string;
      ip: string;
      podCIDR: string;
      ready: boolean;
      bpffs: string;
      agentPid?: number;
      /** 'none', or WireGuard with its ready peers (integration/lab/encryption.ts) */
      encryption?: string;
    }>;
    pods: Array<{ name: string; node: string; ip: string; netns: string }>;
  }>;
}

/** Status of lab `name`, or undefined when no such lab runs. A node is ready when its agent answers. */
export async function labStatus(name: string): Promise<LabStatus | undefined> {
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record) return undefined;
  const { plan } = record;
  const clusters = await Promise.all(
    plan.clusters.map(async (c) => {
      const nodes = await Promise.all(
        c.nodes.map(async (n) => {
          const answer = await callAgent(
            endpointSocketPath(n.stateDir),
            { op: 'ping' },
            2000,
          ).catch(() => undefined);
          const agentPid = record.agents.find((a) => a.node === n.name)?.pid;
          return {
            name: n.name,
            netns: n.netns,
            ip: n.ip,
            podCIDR: n.podCIDR,
            ready: answer?.ok === true,
            bpffs: n.bpffs,
            ...(agentPid && { agentPid }),
            encryption: await nodeEncryption(plan, n.stateDir),
          };
        }),
      );
      const cp = await controlPlaneStatus(record, c);
      const pods = labPods(record)
        .filter((p) => p.cluster === c.name)
        .map((p) => ({ name: `${p.namespace}/${p.name}`, node: p.node, ip: p.ip, netns: p.netns }));
      return {
        name: c.name,
        id: c.id,
        ready:
          nodes.every((n) => n.ready) &&
          (cp.apiServer?.ready ?? true) &&
          (cp.kubelet?.ready ?? true),
        podCIDR: c.podCIDR,
        serviceCIDR: c.serviceCIDR,
        controlPlane: cp,
        nodes,
        pods,
      };
    }),
  );
  return {
    name,
    ready: record.ready !== false && clusters.every((c) => c.ready),
    underlay: { netns: plan.underlay.netns, cidr: plan.underlay.cidr },
    world: { netns: plan.world.netns, ip: plan.world.ip },
    clusters,
  };
}

async function controlPlaneStatus(
  record: LabRecord,
  c: LabRecord['plan']['clusters'][number],
): Promise<LabStatus['clusters'][number]['controlPlane']> {
  const base = { netns: c.controlPlane.netns, ip: c.controlPlane.ip };
  if (!record.controlPlanes) return base;
  const paths = controlPlanePaths(record.plan, c);
  const kubelet = record.kubelets?.find((k) => k.cluster === c.name);
  return {
    ...base,
    apiServer: {
      address: paths.apiAddress,
      socket: paths.apiSocket,
      kubeconfig: paths.kubeconfig,
      ready: await apiHealthy(paths.apiSocket),
    },
    ...(kubelet && {
      kubelet: { pid: kubelet.pid, ready: kubeletAlive(record.plan, c, kubelet.pid) },
    }),
  };
}

export interface PortProbe {
  port: number;
  protocol: ProbeProtocol;
}

export interface ProbeRow {
  from: string;
  to: string;
  port: number;
  protocol: ProbeProtocol;
  allowed: boolean;
  reason: string;
}

const podId = (p: LabPod): string => `${p.cluster}/${p.namespace}/${p.name}`;

/** One row per ordered pair of distinct pods per port probe, as `isthmus policy reachability` prints. */
export async function probeAllPairs(
  pods: readonly LabPod[],
  ports: PortProbe[],
  opts?: ProbeOptions,
): Promise<ProbeRow[]> {
  const pairs = ports.flatMap((p) =>
    pods.flatMap((from) => pods.filter((to) => to !== from).map((to) => ({ from, to, ...p }))),
  );
  const results = await probe(
    pairs.map((x) => ({
      fromNetns: x.from.netnsPath,
      ip: x.to.ip,
      port: x.port,
      protocol: x.protocol,
    })),
    opts,
  );
  return pairs.map((x, i) => {
    const r = results[i]!;
    const reason =
      r.result === 'allowed'
        ? 'echoed'
        : r.result === 'dropped'
          ? `dropped (no answer in ${r.attempts} attempts${r.detail && r.detail !== 'timeout' ? `: ${r.detail}` : ''})`
          : `${r.result}: ${r.detail}`;
    return {
      from: podId(x.from),
      to: podId(x.to),
      port: x.port,
      protocol: x.protocol,
      allowed: r.result === 'allowed',
      reason,
    };
  });
}
