// Shared set-up of the cross-node datapath benchmarks: a 2-node lab with the kernel datapath in
// real agents, a client pod on node 1 and a server pod on node 2, identities loaded through the
// typed wrappers (integration/e2e/mesh.ts), helpers to run tools inside pods, to toggle the pod
// programs and to fill the maps. Every run removes its lab and reports what it left behind.
import { spawn } from 'node:child_process';
import { Protocol, type EndpointPolicy, type PolicyEntry } from '../../agent/policy/entry.ts';
import { Mesh } from '../../integration/e2e/mesh.ts';
import { planLab, type NodePlan } from '../../integration/lab/config.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import type { LabPod } from '../../integration/lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../../integration/lab/testing.ts';

export interface BenchLab {
  lab: Lab;
  mesh: Mesh;
  client: LabPod;
  server: LabPod;
}

/** Starts the lab, runs `body`, always tears the lab down and checks nothing is left. */
export async function withBenchLab(prefix: string, body: (b: BenchLab) => Promise<void>) {
  await ensureBuilt();
  const name = uniqueLabName(prefix);
  const plan = planLab({
    name,
    encryption: 'none',
    clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
  });
  const [n1, n2] = plan.clusters[0]!.nodes as [NodePlan, NodePlan];
  let lab: Lab | undefined;
  let mesh: Mesh | undefined;
  try {
    lab = await Lab.up(plan, { datapath: 'bpf', kubernetes: false });
    const ports = [{ port: 80, protocol: 'TCP' as const }];
    const [client, server] = (await lab.addPods([
      { cluster: 'c1', namespace: 'bench', name: 'client', node: n1.name, ports },
      { cluster: 'c1', namespace: 'bench', name: 'server', node: n2.name, ports },
    ])) as [LabPod, LabPod];
    mesh = new Mesh(lab, [client, server], { events: false });
    await body({ lab, mesh, client, server });
  } finally {
    mesh?.close();
    await lab?.down();
    const left = await labLeftovers(name);
    if (left.length) console.error(`left behind: ${left.join(', ')}`);
  }
}

/** Runs a command inside a pod's (or node's) network namespace, killed after timeoutMs. */
export function inNetns(netnsPath: string, argv: string[], timeoutMs: number, input?: string) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, ...argv], {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${argv.join(' ').slice(0, 200)} exited ${code}: ${err.trim()}`));
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Cross-node TCP throughput in Gbit/s: one iperf3 run of `seconds` from client to server. */
export async function iperf(b: BenchLab, seconds: number, port = 5201): Promise<number> {
  const limit = (seconds + 15) * 1000;
  const srv = inNetns(b.server.netnsPath, ['iperf3', '-s', '-1', '-p', String(port)], limit);
  await new Promise((r) => setTimeout(r, 300));
  const out = await inNetns(
    b.client.netnsPath,
    ['iperf3', '-c', b.server.ip, '-p', String(port), '-t', String(seconds), '-J'],
    limit,
  );
  await srv;
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}

/** Attaches (the agent's pinned programs) or detaches the programs on both pods' veths. */
export function setPrograms(b: BenchLab, on: boolean, pods = [b.client, b.server]): void {
  for (const pod of pods) {
    const maps = b.mesh.node(pod.node).maps;
    const ifindex = b.mesh.hostIfindexOf(pod);
    if (on) maps.attachEndpoint({ ifindex });
    else maps.detachEndpoint({ ifindex });
    const ids = maps.attached({ ifindex });
    if ((ids.ingressProgramId !== 0) !== on || (ids.egressProgramId !== 0) !== on)
      throw new Error(`programs on ${pod.name}'s veth did not turn ${on ? 'on' : 'off'}`);
  }
}

export const median = (xs: number[]): number =>
  [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;

/** Median of the per-repeat ratios a[i]/b[i]: each pair ran back to back, so it is less swayed
 * by load that drifts over the run (other work on a 2-core machine) than a ratio of medians. */
export const pairedRatio = (a: number[], b: number[]): number =>
  median(a.slice(0, b.length).map((x, i) => x / b[i]!));

/**
 * Runs every condition once per round for `repeats` rounds, rotating the order each round so no
 * condition always runs first (after a map reload, or when load drifts); stops early when the
 * rounds overrun `repeats` x conditions x `perRunMs`. Returns each condition's figures in order.
 */
export async function interleavedRounds<C extends string>(
  conditions: readonly C[],
  repeats: number,
  perRunMs: number,
  run: (condition: C, round: number) => Promise<number>,
): Promise<Record<C, number[]>> {
  const results = Object.fromEntries(conditions.map((c) => [c, [] as number[]])) as Record<
    C,
    number[]
  >;
  const deadline = Date.now() + repeats * conditions.length * perRunMs;
  for (let r = 0; r < repeats && Date.now() < deadline; r++)
    for (let k = 0; k < conditions.length; k++) {
      const c = conditions[(r + k) % conditions.length]!;
      results[c].push(await run(c, r));
    }
  return results;
}

/** "ratio R (of medians M; paired median P; target >= T)" */
export function ratioLine(label: string, a: number[], b: number[], target: number): string {
  const ofMedians = median(a) / median(b);
  const paired = pairedRatio(a, b);
  return (
    `  ${label.padEnd(26)} ${ofMedians.toFixed(3)} (ratio of medians; median of paired ` +
    `ratios ${paired.toFixed(3)}; target >= ${target})`
  );
}

/** `count` filler entries for one direction: distinct identities not in the lab, TCP, some
 * ports, one allowed entry for `peer` on `port` among them (the LPM lookup has no order). */
export function policyWithFillers(
  direction: 'ingress' | 'egress',
  peer: number,
  ports: number[],
  count: number,
): EndpointPolicy {
  const entries: PolicyEntry[] = [];
  for (let i = 0; entries.length < count - ports.length; i++)
    entries.push({
      direction,
      peer: (2 << 16) | (i % 60_000),
      protocol: Protocol.TCP,
      port: 1000 + Math.floor(i / 60_000),
      portPrefixLen: 16,
      deny: false,
    });
  for (const port of ports)
    entries.push({ direction, peer, protocol: Protocol.TCP, port, portPrefixLen: 16, deny: false });
  return {
    ingressEnforced: direction === 'ingress',
    egressEnforced: direction === 'egress',
    entries,
    prefixes: [],
  };
}

/** `count` filler ipcache prefixes (/32s in 10.64.0.0/10, outside the lab) on every node. */
export function fillIpcache(b: BenchLab, count: number): string[] {
  const keys = Array.from(
    { length: count },
    (_, i) => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`,
  );
  for (const n of b.mesh.nodes.values())
    n.maps.ipcache.setMany(
      keys.map((k, i) => [k, { identity: (2 << 16) | (i % 60_000), encrypt: false }] as const),
    );
  return keys;
}

export function clearIpcache(b: BenchLab, keys: string[]): void {
  for (const n of b.mesh.nodes.values()) n.maps.ipcache.deleteMany(keys);
}
