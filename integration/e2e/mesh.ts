// End-to-end test scaffolding over a running lab with the kernel datapath: every node's pinned
// maps opened from the test process, pod identities written the way the agent's ipcache and
// endpoint reconcilers will (every pod of every node in every node's ipcache; the node's own IPs as
// HOST), flow events collected per node, and traffic helpers run inside pod namespaces.
import { spawn } from 'node:child_process';
import ipaddr from 'ipaddr.js';
import { IDENTITY_HOST } from '../../agent/datapath/constants.ts';
import type { FlowEvent } from '../../agent/datapath/events.ts';
import type { EndpointPolicy } from '../../agent/policy/entry.ts';
import type { NodePlan } from '../lab/config.ts';
import type { Lab } from '../lab/lab.ts';
import { nodesOf } from '../lab/lab.ts';
import type { LabPod } from '../lab/record.ts';
import { netToolPath } from '../lab/net-tool.ts';
import { openNodeMaps, type NodeMaps } from './node-maps.ts';

/** Reserved identity of other nodes (DESIGN.md "Identities"). */
export const IDENTITY_REMOTE_NODE = 6;

export const OPEN: EndpointPolicy = {
  ingressEnforced: false,
  egressEnforced: false,
  entries: [],
  prefixes: [],
};

/** The router IP every host veth of a node carries: the first address of the node's /24. */
export function routerIpOf(node: NodePlan): string {
  const [net] = ipaddr.IPv4.parseCIDR(node.podCIDR);
  const bytes = net.toByteArray();
  bytes[3] = bytes[3]! + 1;
  return ipaddr.fromByteArray(bytes).toString();
}

export interface MeshNode {
  plan: NodePlan;
  maps: NodeMaps;
  events: FlowEvent[];
}

export class Mesh {
  readonly nodes = new Map<string, MeshNode>();
  private readonly identities = new Map<string, number>();

  /** `events: false` leaves the ring buffers unconsumed (benchmarks: no wake-ups per event). */
  constructor(
    private readonly lab: Lab,
    readonly pods: LabPod[],
    opts: { events?: boolean } = {},
  ) {
    pods.forEach((p, i) => this.identities.set(p.ip, (1 << 16) | (1000 + i)));
    for (const plan of nodesOf(lab.plan)) {
      const node: MeshNode = { plan, maps: openNodeMaps(plan), events: [] };
      if (opts.events !== false) node.maps.subscribeEvents((e) => node.events.push(e));
      this.nodes.set(plan.name, node);
    }
    this.writeIdentities();
  }

  identityOf(pod: LabPod): number {
    return this.identities.get(pod.ip)!;
  }

  node(name: string): MeshNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`mesh has no node ${name}`);
    return n;
  }

  /** The endpoint id the agent gave the pod (from the node's endpoints row). */
  endpointIdOf(pod: LabPod): number {
    const row = this.node(pod.node).maps.endpoints.get(pod.ip);
    if (!row) throw new Error(`no endpoints row for ${pod.ip} on ${pod.node}`);
    return row.endpointId;
  }

  hostIfindexOf(pod: LabPod): number {
    return this.node(pod.node).maps.endpoints.get(pod.ip)!.ifindex;
  }

  applyPolicy(pod: LabPod, policy: EndpointPolicy): void {
    this.node(pod.node).maps.applyEndpointPolicy(this.endpointIdOf(pod), policy);
  }

  /** Opens every pod, forgets connections and collected events. */
  reset(): void {
    for (const pod of this.pods) {
      this.applyPolicy(pod, OPEN);
      this.node(pod.node).maps.ct.flushEndpoint(this.endpointIdOf(pod));
    }
    for (const n of this.nodes.values()) {
      n.maps.drainEvents();
      n.events.length = 0;
    }
  }

  /** Waits until a matching event arrived from `node` (events come through the event loop). */
  async waitForEvent(
    node: string,
    pred: (e: FlowEvent) => boolean,
    timeoutMs = 3000,
  ): Promise<FlowEvent | undefined> {
    const n = this.node(node);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      n.maps.drainEvents();
      const hit = n.events.find(pred);
      if (hit || Date.now() > deadline) return hit;
      await sleep(50);
    }
  }

  close(): void {
    for (const n of this.nodes.values()) n.maps.close();
  }

  private writeIdentities(): void {
    const all = nodesOf(this.lab.plan);
    for (const { plan, maps } of this.nodes.values()) {
      for (const other of all) {
        const own = other.name === plan.name;
        maps.ipcache.set(`${other.ip}/32`, {
          identity: own ? IDENTITY_HOST : IDENTITY_REMOTE_NODE,
          encrypt: false,
        });
        if (own) maps.ipcache.set(`${routerIpOf(other)}/32`, { identity: 1, encrypt: false });
      }
      for (const pod of this.pods) {
        const hostIp = all.find((n) => n.name === pod.node)!.ip;
        maps.ipcache.set(`${pod.ip}/32`, {
          identity: this.identityOf(pod),
          hostIp,
          encrypt: false,
        });
        const row = pod.node === plan.name ? maps.endpoints.get(pod.ip) : undefined;
        if (row) maps.endpoints.set(pod.ip, { ...row, identity: this.identityOf(pod) });
      }
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export { netTool } from '../lab/net-tool.ts';

/** A long-running net-tool mode (sniff, tcp-stream) whose lines are collected as they come. */
export function netToolBackground(
  netnsPath: string,
  args: string[],
  timeoutMs: number,
): { lines: Array<Record<string, unknown>>; first: Promise<void>; done: Promise<void> } {
  const lines: Array<Record<string, unknown>> = [];
  const child = spawn('nsenter', [`--net=${netnsPath}`, 'python3', netToolPath(), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  let buf = '';
  let onFirst: () => void = () => {};
  const first = new Promise<void>((r) => (onFirst = r));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
      onFirst();
    }
  });
  const done = new Promise<void>((resolve) =>
    child.on('close', () => {
      clearTimeout(timer);
      onFirst();
      resolve();
    }),
  );
  return { lines, first, done };
}
