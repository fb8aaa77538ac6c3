// `lab status` and `lab probe` as library calls: the lab's state in DESIGN.md's JSON shape, and
// real-traffic probes between every ordered pair of pods in the reachability JSON shape.
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { RUN_ROOT } from './config.ts';
import { probe, type ProbeOptions, type ProbeProtocol } from './probe.ts';
import { readRecord, type LabPod } from './record.ts';

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
    controlPlane: { netns: string; ip: string };
    nodes: Array<{
      name: string;
      netns: string;
      ip: string;
      podCIDR: string;
      ready: boolean;
      bpffs: string;
      agentPid?: number;
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
          };
        }),
      );
      const pods = record.pods
        .filter((p) => p.cluster === c.name)
        .map((p) => ({ name: `${p.namespace}/${p.name}`, node: p.node, ip: p.ip, netns: p.netns }));
      return {
        name: c.name,
        id: c.id,
        ready: nodes.every((n) => n.ready),
        podCIDR: c.podCIDR,
        serviceCIDR: c.serviceCIDR,
        controlPlane: { netns: c.controlPlane.netns, ip: c.controlPlane.ip },
        nodes,
        pods,
      };
    }),
  );
  return {
    name,
    ready: clusters.every((c) => c.ready),
    underlay: { netns: plan.underlay.netns, cidr: plan.underlay.cidr },
    world: { netns: plan.world.netns, ip: plan.world.ip },
    clusters,
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
