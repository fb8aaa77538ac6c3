// The status a kubelet reports: pods Running and Ready with their IPs, nodes Ready with their
// InternalIP (or NotReady while the node's agent, the network plugin, does not answer).
import type { PodPort } from '../lab/record.ts';
import type { KubeletNode, RunningPod } from './types.ts';

interface ContainerSpec {
  name: string;
  image?: string;
  ports?: Array<{ containerPort: number; protocol?: string; name?: string }>;
}

/** Declared container ports the echo server serves (TCP and UDP; SCTP is not served). */
export function declaredPorts(containers: readonly ContainerSpec[] | undefined): PodPort[] {
  const seen = new Set<string>();
  const ports: PodPort[] = [];
  for (const c of containers ?? []) {
    for (const p of c.ports ?? []) {
      const protocol = (p.protocol ?? 'TCP') as string;
      if (protocol !== 'TCP' && protocol !== 'UDP') continue;
      const key = `${p.containerPort}/${protocol}`;
      if (seen.has(key)) continue;
      seen.add(key);
      ports.push({ port: p.containerPort, protocol, ...(p.name && { name: p.name }) });
    }
  }
  return ports;
}

export function runningPodStatus(
  pod: RunningPod,
  node: KubeletNode,
  containers: readonly ContainerSpec[] | undefined,
  now: string,
): Record<string, unknown> {
  const condition = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
  return {
    phase: 'Running',
    podIP: pod.ip,
    podIPs: [{ ip: pod.ip }],
    hostIP: node.ip,
    hostIPs: [{ ip: node.ip }],
    startTime: now,
    conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
    containerStatuses: (containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? '',
      imageID: '',
      containerID: `isthmus-lab://${pod.containerId.slice(0, 16)}`,
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now } },
    })),
  };
}

export function nodeStatus(node: KubeletNode, networkReady: boolean, now: string) {
  return {
    addresses: [
      { type: 'InternalIP', address: node.ip },
      { type: 'Hostname', address: node.name },
    ],
    conditions: [
      {
        type: 'Ready',
        status: networkReady ? 'True' : 'False',
        reason: networkReady ? 'KubeletReady' : 'NetworkPluginNotReady',
        message: networkReady
          ? 'lab kubelet is posting ready status'
          : `the isthmus agent of ${node.name} does not answer`,
        lastHeartbeatTime: now,
        lastTransitionTime: now,
      },
    ],
    nodeInfo: {
      kubeletVersion: 'v1.32.0-isthmus-lab',
      operatingSystem: 'linux',
      architecture: 'amd64',
    },
  };
}
