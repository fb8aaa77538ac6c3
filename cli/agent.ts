// `isthmus agent status`: what each node agent enforces — endpoints with identities, labels and
// policy revision, ipcache size, invalid policies with their reasons — and whether its BPF maps,
// read back, have converged on the API's current state. Asks the agents over their endpoint
// sockets (a lab's nodes by name, or one agent by --socket).
import { Command, Option } from 'commander';
import { endpointSocketPath } from '../agent/daemon.ts';
import type { AgentStatus } from '../agent/daemon/types.ts';
import { callAgent } from '../agent/endpoint/client.ts';
import { RUN_ROOT } from '../integration/lab/config.ts';
import { nodesOf } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import { resolveLabName } from '../integration/lab/supervisor.ts';
import { formatEncryption } from './wireguard.ts';

class AgentCliError extends Error {
  readonly code = 'ISTHMUS_AGENT_CLI';
}

/** Socket path per node: one agent (--socket), one lab node (--node), or every node of the lab. */
async function targets(opts: {
  socket?: string;
  node?: string;
  lab?: string;
}): Promise<[string, string][]> {
  if (opts.socket) return [[opts.node ?? opts.socket, opts.socket]];
  const name = await resolveLabName(opts.lab).catch((err: Error) => {
    throw new AgentCliError(`${err.message} (or name an agent with --socket PATH)`);
  });
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record) throw new AgentCliError(`no lab named ${name}: see \`isthmus lab status\``);
  const nodes = nodesOf(record.plan).filter((n) => !opts.node || n.name === opts.node);
  if (!nodes.length)
    throw new AgentCliError(
      `lab ${name} has no node ${opts.node}: nodes are ${nodesOf(record.plan)
        .map((n) => n.name)
        .join(', ')}`,
    );
  return nodes.map((n) => [n.name, endpointSocketPath(n.stateDir)]);
}

export async function agentStatus(socket: string, timeoutMs = 10_000): Promise<AgentStatus> {
  const answer = await callAgent(socket, { op: 'status' }, timeoutMs).catch((err: Error) => {
    throw new AgentCliError(err.message);
  });
  if (!answer.ok) throw new AgentCliError(`agent at ${socket}: ${answer.error.msg}`);
  return answer.status as AgentStatus;
}

export function formatAgentStatus(s: AgentStatus): string {
  const lines = [
    `node ${s.node} (cluster ${s.cluster || '-'}): converged: ${s.converged}` +
      (s.kubernetes ? '' : ' (no control plane: policy and ipcache not managed)'),
  ];
  for (const p of s.pending.slice(0, 10)) lines.push(`  pending: ${p}`);
  if (s.pending.length > 10) lines.push(`  pending: ... ${s.pending.length - 10} more`);
  lines.push(
    `  ipcache: ${s.ipcache.size} entries (desired ${s.ipcache.desired}), converged: ${s.ipcache.converged}`,
  );
  lines.push(`  policies enforced: ${s.policies.enforced}, invalid: ${s.policies.invalid.length}`);
  for (const p of s.policies.invalid)
    lines.push(
      `    ${p.key}@${p.resourceVersion}: ${p.reason}` +
        (p.lastGoodEnforced ? ' (last good version stays enforced)' : ''),
    );
  if (s.lastFullPass)
    lines.push(
      `  last full pass: ${s.lastFullPass.at}, ${s.lastFullPass.checked} checked, ${s.lastFullPass.repaired} repaired`,
    );
  lines.push(
    '  ENDPOINT  POD                        IP             IDENTITY  REV  ENFORCED  CONVERGED',
  );
  for (const e of s.endpoints) {
    const enforced = [e.ingressEnforced && 'in', e.egressEnforced && 'out']
      .filter(Boolean)
      .join('+');
    lines.push(
      `  ${String(e.id).padEnd(8)}  ${e.pod.padEnd(25)}  ${e.ip.padEnd(13)}  ${String(e.identity).padEnd(8)}  ${String(e.policyRevision).padEnd(3)}  ${(enforced || '-').padEnd(8)}  ${e.converged}${e.error ? ` (${e.error})` : ''}`,
    );
    if (e.labels) lines.push(`            labels: ${e.labels}`);
  }
  if (s.encryption) lines.push(...formatEncryption(s.encryption));
  return lines.join('\n');
}

/** What a command asking node agents is given (`agentTargetOptions`). */
export interface AgentTargetOptions {
  node?: string;
  lab?: string;
  socket?: string;
  output: string;
}

/** Adds the options of a command that asks node agents: which node(s) of which lab, or one
 * agent's socket, and json|table output (for `agent status`, and any other such command). */
export function agentTargetOptions(cmd: Command): Command {
  return cmd
    .option('--node <name>', 'one node of the lab (default: every node)')
    .option('--lab <name>', 'which lab (default: the only one running)')
    .option('--socket <path>', "an agent's endpoint socket, outside a lab")
    .addOption(
      new Option('--output <format>', 'output format').choices(['json', 'table']).default('table'),
    );
}

export function register(program: Command): void {
  const agent = program.command('agent').description('Inspect the node agents');
  agentTargetOptions(
    agent
      .command('status')
      .description(
        'Endpoints, identities, policy revisions and datapath convergence of node agents',
      ),
  )
    .addHelpText(
      'after',
      `
converged: true means the agent handled the API's current objects and its BPF maps, read back
from the kernel, hold exactly the policy, prefix, endpoint and ipcache rows computed from them.
Exit code 3 when some agent has not converged.`,
    )
    .action(async (opts: AgentTargetOptions) => {
      try {
        const statuses: AgentStatus[] = [];
        for (const [, socket] of await targets(opts)) statuses.push(await agentStatus(socket));
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify({ agents: statuses }, null, 2) + '\n'
            : statuses.map(formatAgentStatus).join('\n\n') + '\n',
        );
        if (statuses.some((s) => !s.converged)) process.exitCode = 3;
      } catch (err) {
        if (!(err instanceof AgentCliError)) throw err;
        process.stderr.write(`isthmus: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
