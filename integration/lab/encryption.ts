// The lab's side of transparent encryption: teardown of the nodes' WireGuard devices (their
// wireguard-go daemons outlive agents) and the per-node encryption summary of `lab status`.
import { existsSync } from 'node:fs';
import { destroyDevice } from '../../agent/wireguard/device.ts';
import { WG_PRIMARY, WG_SECONDARY } from '../../agent/wireguard/types.ts';
import type { AgentStatus } from '../../agent/daemon/types.ts';
import type { LabPlan } from './config.ts';
import { netnsPath } from './netns.ts';

export async function destroyTunnels(plan: LabPlan): Promise<void> {
  for (const node of plan.clusters.flatMap((c) => c.nodes)) {
    const netns = netnsPath(node.netns);
    if (!existsSync(netns)) continue;
    for (const { ifname } of [WG_PRIMARY, WG_SECONDARY])
      await destroyDevice({ netns, stateDir: node.stateDir, ifname }).catch(() => {});
  }
}

/** `wireguard 2/2 peers ready`, `none`, or why it is not running. */
export function encryptionSummary(status: AgentStatus | undefined): string {
  const e = status?.encryption;
  if (!e) return 'none';
  const ready = e.peers.filter((p) => p.ready).length;
  const rotating = e.rotation ? ', rotating' : '';
  return `wireguard ${ready}/${e.peers.length} peers ready${e.strict ? ', strict' : ''}${rotating}`;
}
