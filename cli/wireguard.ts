// `isthmus wireguard rotate|status`: a node's WireGuard key rotation (make-before-break, run by
// the node's agent) and its device and peers. Talks to each agent's WireGuard socket
// (`<stateDir>/wireguard.sock`, agent/daemon/encryption.ts).
import { Command } from 'commander';
import type { EncryptionStatus } from '../agent/daemon/encryption.ts';
import { callWireguard } from '../agent/daemon/encryption-client.ts';

export { callWireguard };
import { RUN_ROOT } from '../integration/lab/config.ts';
import { nodesOf } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import { resolveLabName } from '../integration/lab/supervisor.ts';

class WireguardCliError extends Error {
  readonly code = 'ISTHMUS_WIREGUARD_CLI';
}

/** The lines `isthmus agent status` prints for a node's encryption. */
export function formatEncryption(e: EncryptionStatus | undefined): string[] {
  if (!e) return ['  encryption: none'];
  const now = Date.now() / 1000;
  const lines = [
    `  encryption: wireguard ${e.device} (${e.mode}${e.pid ? ` pid ${e.pid}` : ''}) port ${e.listenPort} mtu ${e.mtu}, strict ${e.strict ? 'on' : 'off'}`,
    `    public key: ${e.publicKey}`,
  ];
  if (e.rotation)
    lines.push(
      `    rotating to ${e.rotation.publicKey} on ${e.rotation.device}:${e.rotation.listenPort}`,
    );
  lines.push(
    '    PEER                 ENDPOINT              HANDSHAKE  RX         TX         READY',
  );
  for (const p of e.peers) {
    const hs = p.latestHandshake ? `${Math.round(now - p.latestHandshake)}s ago` : 'never';
    lines.push(
      `    ${p.node.padEnd(20)} ${(p.endpoint ?? '-').padEnd(21)} ${hs.padEnd(10)} ${String(p.rxBytes).padEnd(10)} ${String(p.txBytes).padEnd(10)} ${p.ready}`,
    );
  }
  for (const r of e.refused) lines.push(`    refused ${r.node}: ${r.reason}`);
  return lines;
}

async function labNodes(lab: string | undefined, node: string | undefined) {
  const name = await resolveLabName(lab);
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record) throw new WireguardCliError(`no lab named ${name}: see \`isthmus lab status\``);
  const nodes = nodesOf(record.plan).filter((n) => !node || n.name === node);
  if (!nodes.length) throw new WireguardCliError(`lab ${name} has no node ${node}`);
  return nodes;
}

export function register(program: Command): void {
  const wg = program.command('wireguard').description('Transparent encryption between nodes');
  wg.command('rotate')
    .description('Gives nodes new WireGuard keys without breaking connections (make-before-break)')
    .option('--node <name>', 'one node of the lab (default: every node, one after another)')
    .option('--lab <name>', 'which lab (default: the only one running)')
    .option('--timeout <seconds>', 'wait this long for peers to handshake on the new key', '30')
    .action(async (o: { node?: string; lab?: string; timeout: string }) => {
      const ms = Number(o.timeout) * 1000;
      for (const n of await labNodes(o.lab, o.node)) {
        const r = await callWireguard(
          n.stateDir,
          { op: 'rotate', handshakeTimeoutMs: ms },
          ms + 60_000,
        );
        if (!r.ok) throw new WireguardCliError(`${n.name}: ${r.error}`);
        const rot = r.rotation as {
          oldKey: string;
          newKey: string;
          missing: string[];
          stillOnOld: string[];
          ms: number;
        };
        const state = rot.missing.length
          ? `pending: peers without the new key: ${rot.missing.join(', ')} (old key keeps serving)`
          : rot.stillOnOld.length
            ? `switched; old key retires once ${rot.stillOnOld.join(', ')} stop using it`
            : 'switched, old key retired';
        console.log(`${n.name}: ${rot.oldKey} -> ${rot.newKey} in ${rot.ms} ms: ${state}`);
        if (rot.missing.length) process.exitCode = 3;
      }
    });
  wg.command('status')
    .description('Device, public key and peers of each node')
    .option('--node <name>', 'one node of the lab')
    .option('--lab <name>', 'which lab (default: the only one running)')
    .action(async (o: { node?: string; lab?: string }) => {
      for (const n of await labNodes(o.lab, o.node)) {
        const r = await callWireguard(n.stateDir, { op: 'status' });
        console.log(`node ${n.name}\n${formatEncryption(r.status).join('\n')}`);
      }
    });
}
