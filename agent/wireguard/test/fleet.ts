// The WireguardAgents of a test topology, one per node: their options (wireguard-go, strict
// filter on the node's underlay), start, lookup, and a teardown that also ends every
// wireguard-go process any of them ever ran (by PID), then the topology itself.
import { existsSync } from 'node:fs';
import { WireguardAgent, type WireguardAgentOptions } from '../agent.ts';
import type { WgNode } from '../types.ts';
import {
  buildTopology,
  teardownTopology,
  wgNodeOf,
  type TestNode,
  type Topology,
} from './topology.ts';

export class AgentFleet {
  readonly agents = new Map<string, WireguardAgent>();
  /** every wireguard-go PID seen, checked or ended at teardown */
  readonly pids = new Set<number>();
  private built: Topology | undefined;

  async build(prefix: string, podMtu?: number, nodeCount?: number): Promise<Topology> {
    this.built = await buildTopology(prefix, podMtu, nodeCount);
    return this.built;
  }

  get topo(): Topology {
    if (!this.built) throw new Error('topology not built');
    return this.built;
  }

  options(n: TestNode): WireguardAgentOptions {
    return {
      nodeName: n.name,
      netns: n.netns,
      stateDir: n.stateDir,
      resyncMs: 0,
      mode: 'wireguard-go',
      strict: {
        pinRoot: this.topo.pinRoots[n.index - 1] ?? '',
        underlayIf: 'eth0',
        localPodCIDRs: [n.podCIDR],
      },
    };
  }

  async start(n: TestNode): Promise<WireguardAgent> {
    const a = this.track(await WireguardAgent.start(this.options(n)));
    this.agents.set(n.name, a);
    return a;
  }

  /** Records the wireguard-go PIDs of `a`'s devices. */
  track(a: WireguardAgent): WireguardAgent {
    for (const d of [a.activeDevice, a.nextDevice, a.retiringDevice]) {
      if (d?.pid) this.pids.add(d.pid);
    }
    return a;
  }

  of(n: TestNode): WireguardAgent {
    const a = this.agents.get(n.name);
    if (!a) throw new Error(`no agent for ${n.name}`);
    return a;
  }

  /** Every node with its agent's current public key (none where no agent runs). */
  table(): WgNode[] {
    return this.topo.nodes.map((n) => wgNodeOf(n, this.agents.get(n.name)?.publicKey));
  }

  /** Destroys the agents; PIDs still alive afterwards (none after a clean run). */
  async stopAll(): Promise<number[]> {
    for (const a of this.agents.values()) await a.destroy();
    this.agents.clear();
    return [...this.pids].filter((pid) => existsSync(`/proc/${pid}`));
  }

  /** Removes the topology (after stopAll). */
  async teardown(): Promise<void> {
    if (this.built) await teardownTopology(this.built);
    this.built = undefined;
  }

  /** Best-effort teardown for test.after.always. */
  async destroy(): Promise<void> {
    for (const a of this.agents.values()) await a.destroy().catch(() => {});
    for (const pid of this.pids) if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
    await this.teardown().catch(() => {});
  }
}
