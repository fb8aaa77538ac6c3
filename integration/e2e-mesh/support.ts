// Helpers of the ClusterMesh end-to-end tests: the engine's verdict on BOTH clusters' objects,
// waiting until every node's BPF ipcache holds the other cluster's pods, reading a node's ipcache,
// and an iperf3 stream between two pods.
import { spawn } from 'node:child_process';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import { loadMesh } from '../../agent/policy/load.ts';
import { parseProbe, reachability } from '../../agent/policy/reachability.ts';
import { runCommand } from '../../agent/routing/command.ts';
import { openNodeMaps } from '../e2e/node-maps.ts';
import { kubectl, statuses, until } from '../e2e-policy/support.ts';
import type { LabPlan, NodePlan } from '../lab/config.ts';
import type { LabPod } from '../lab/record.ts';
import type { PortProbe, ProbeRow } from '../lab/status.ts';

const KINDS =
  'namespaces,pods,networkpolicies,ciliumnetworkpolicies,ciliumclusterwidenetworkpolicies';

/** `policy reachability` with every cluster's objects (one --cluster per cluster). */
export async function meshEngineRows(
  plan: LabPlan,
  pods: LabPod[],
  ports: PortProbe[],
): Promise<ProbeRow[]> {
  const sources = [];
  for (const c of plan.clusters) {
    const list = JSON.parse(
      await kubectl(plan, ['get', KINDS, '-A', '-o', 'json'], '', c.name),
    ) as {
      items: { kind: string; metadata: { name: string; namespace?: string } }[];
    };
    const mine = pods.filter((p) => p.cluster === c.name);
    const wanted = new Set(mine.map((p) => `${p.namespace}/${p.name}`));
    const namespaces = new Set(mine.map((p) => p.namespace));
    const items = list.items.filter(
      (o) =>
        (o.kind !== 'Pod' || wanted.has(`${o.metadata.namespace}/${o.metadata.name}`)) &&
        (o.kind !== 'Namespace' || namespaces.has(o.metadata.name)),
    );
    const text = JSON.stringify({
      kind: 'List',
      items: [{ kind: 'Cluster', metadata: { name: c.name }, spec: { id: c.id } }, ...items],
    });
    sources.push({ cluster: c.name, file: `${c.name} objects`, text });
  }
  const rows = reachability(
    loadMesh(sources),
    ports.map((p) => parseProbe(`${p.port}/${p.protocol}`)),
  );
  return rows.map((r) => ({ ...r, protocol: r.protocol as ProbeRow['protocol'] })).sort(byKey);
}

export const rowKey = (r: { from: string; to: string; port: number; protocol: string }): string =>
  `${r.from} -> ${r.to} ${r.port}/${r.protocol}`;

export function byKey(a: ProbeRow, b: ProbeRow): number {
  return rowKey(a).localeCompare(rowKey(b));
}

/** The node's BPF ipcache, read from its pinned map: cidr -> identity. */
export function nodeIpcache(node: NodePlan): Map<string, number> {
  const maps = openNodeMaps(node);
  try {
    return new Map([...maps.ipcache.entries()].map(([cidr, v]) => [cidr, v.identity]));
  } finally {
    maps.close();
  }
}

/**
 * Waits until on every node of the lab, each pod of another cluster maps to its identity in the
 * BPF ipcache (the identity of its CiliumEndpoint, which the remote mirrored) and no IP in
 * `gone` is left; then until every agent converged on its own cluster.
 */
export async function waitForMesh(
  plan: LabPlan,
  pods: LabPod[],
  gone: string[] = [],
  timeoutMs = 60_000,
): Promise<Map<string, AgentStatus>> {
  const identities = await podIdentities(plan);
  await until(
    'remote pods in every node ipcache',
    () => {
      for (const c of plan.clusters)
        for (const node of c.nodes) {
          const map = nodeIpcache(node);
          for (const p of pods)
            if (p.cluster !== c.name && map.get(`${p.ip}/32`) !== identities.get(p.ip))
              return undefined;
          if (gone.some((ip) => map.has(`${ip}/32`))) return undefined;
        }
      return true;
    },
    timeoutMs,
  );
  return until(
    'agents converged',
    async () => {
      const all = await statuses(plan);
      return [...all.values()].every((s) => s.converged) ? all : undefined;
    },
    timeoutMs,
  );
}

/** Pod IP -> identity from every cluster's CiliumEndpoints. */
export async function podIdentities(plan: LabPlan): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const c of plan.clusters) {
    const list = JSON.parse(
      await kubectl(plan, ['get', 'ciliumendpoints', '-A', '-o', 'json'], '', c.name),
    ) as {
      items: {
        status?: { identity?: { id?: number }; networking?: { addressing?: { ipv4?: string }[] } };
      }[];
    };
    for (const cep of list.items) {
      const ip = cep.status?.networking?.addressing?.[0]?.ipv4;
      const id = cep.status?.identity?.id;
      if (ip && id) out.set(ip, id);
    }
  }
  return out;
}

/** An iperf3 stream from `from` to `to` (server on `to`), rate-limited, `seconds` long. */
export async function iperfStream(
  from: LabPod,
  to: LabPod,
  seconds: number,
): Promise<{ result: Promise<{ code: number; stdout: string; stderr: string }>; stop(): void }> {
  const server = spawn(
    'nsenter',
    [
      `--net=${to.netnsPath}`,
      '--',
      'iperf3',
      '-s',
      '-1',
      '--forceflush',
      '-B',
      to.ip,
      '-p',
      '5201',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('iperf3 server did not start')), 10_000);
    server.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  const result = runCommand([
    'timeout',
    String(seconds + 20),
    'nsenter',
    `--net=${from.netnsPath}`,
    '--',
    'iperf3',
    '-c',
    to.ip,
    '-p',
    '5201',
    '-t',
    String(seconds),
    '-b',
    '20M',
    '-J',
  ]);
  return {
    result,
    stop: () => {
      if (server.exitCode === null) server.kill('SIGKILL');
    },
  };
}
