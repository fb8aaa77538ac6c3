// The lab's side of transparent encryption: teardown of the nodes' WireGuard devices (their
// wireguard-go daemons outlive agents) and the per-node encryption summary of `lab status`.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { runCommand } from '../../agent/routing/command.ts';
import { endProcess, spawnDetached } from './processes.ts';
import { repoRoot } from './record.ts';
import { destroyDevice } from '../../agent/wireguard/device.ts';
import { WG_PRIMARY, WG_SECONDARY } from '../../agent/wireguard/types.ts';
import { callWireguard } from '../../agent/daemon/encryption-client.ts';
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

/** A node's encryption as `lab status` shows it ('none' when the lab runs without). */
export async function nodeEncryption(plan: LabPlan, stateDir: string): Promise<string> {
  if (plan.encryption !== 'wireguard') return 'none';
  const r = await callWireguard(stateDir, { op: 'status' }, 3000).catch(() => undefined);
  if (!r?.status) return 'wireguard (agent not answering)';
  const ready = r.status.peers.filter((p) => p.ready).length;
  return `wireguard ${ready}/${r.status.peers.length} peers ready${r.status.strict ? ', strict' : ''}${r.status.rotation ? ', rotating' : ''}`;
}

/** tcpdump on every interface of the underlay namespace, written to a pcap file. */
export async function startCapture(plan: LabPlan, file: string) {
  rmSync(file, { force: true });
  const argv = ['nsenter', `--net=/run/netns/${plan.underlay.netns}`, '--'];
  const pid = spawnDetached(
    [...argv, 'tcpdump', '-i', 'any', '--immediate-mode', '-nn', '-U', '-s', '0', '-w', file],
    `${file}.log`,
    repoRoot(),
  ).pid;
  const deadline = Date.now() + 10_000;
  while (!safeRead(`${file}.log`).includes('listening on')) {
    if (Date.now() > deadline) throw new Error(`tcpdump did not start: ${safeRead(`${file}.log`)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    async stop(): Promise<Captured> {
      await new Promise((r) => setTimeout(r, 500));
      await endProcess(pid, 'tcpdump');
      const text = (await runCommand(['tcpdump', '-nn', '-r', file])).stdout;
      return { raw: readFileSync(file), lines: text.split('\n').filter(Boolean) };
    },
  };
}

export interface Captured {
  raw: Buffer;
  lines: string[];
}

/** Captured packets whose outer addresses are pod addresses (plaintext pod traffic). */
export const plaintextLines = (c: Captured, podPrefix: string): string[] =>
  c.lines.filter((l) => l.includes(` ${podPrefix}`));

export const wireguardLines = (c: Captured): string[] =>
  c.lines.filter((l) => /\.5187[12][ :].*UDP|\.5187[12]: UDP/.test(l));

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
