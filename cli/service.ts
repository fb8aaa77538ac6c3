// `isthmus service list`: each service with its frontends, its backends grouped by cluster with
// their state, the global-service annotations in force and which backends the affinity puts in
// use. Asks one agent per cluster over its endpoint socket (the table is the same on every node
// of a cluster), or one agent by --socket.
import { Command, Option } from 'commander';
import { endpointSocketPath } from '../agent/daemon.ts';
import type { ServiceView } from '../agent/services/types.ts';
import { RUN_ROOT } from '../integration/lab/config.ts';
import { nodesOf } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import { resolveLabName } from '../integration/lab/supervisor.ts';
import { agentStatus } from './agent.ts';

class ServiceCliError extends Error {
  readonly code = 'ISTHMUS_SERVICE_CLI';
}

interface ClusterServices {
  cluster: string;
  node: string;
  services: ServiceView[];
}

/** [cluster, node, socket] of the first node of each (selected) cluster of the lab. */
async function targets(opts: { lab?: string; cluster?: string }): Promise<string[][]> {
  const name = await resolveLabName(opts.lab).catch((err: Error) => {
    throw new ServiceCliError(`${err.message} (or name an agent with --socket PATH)`);
  });
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record) throw new ServiceCliError(`no lab named ${name}: see \`isthmus lab status\``);
  const firsts = new Map<string, string[]>();
  for (const n of nodesOf(record.plan))
    if (!firsts.has(n.cluster))
      firsts.set(n.cluster, [n.cluster, n.name, endpointSocketPath(n.stateDir)]);
  if (opts.cluster && !firsts.has(opts.cluster))
    throw new ServiceCliError(
      `lab ${name} has no cluster ${opts.cluster}: clusters are ${[...firsts.keys()].join(', ')}`,
    );
  return [...firsts.values()].filter(([c]) => !opts.cluster || c === opts.cluster);
}

export async function listServices(opts: {
  lab?: string;
  cluster?: string;
  socket?: string;
}): Promise<ClusterServices[]> {
  const where = opts.socket
    ? [[opts.cluster ?? '', opts.socket, opts.socket]]
    : await targets(opts);
  const out: ClusterServices[] = [];
  for (const [cluster, node, socket] of where) {
    const status = await agentStatus(socket!).catch((err: Error) => {
      throw new ServiceCliError(err.message);
    });
    if (!status.services)
      throw new ServiceCliError(
        `agent ${node} serves no service table: it runs without Kubernetes or without the BPF datapath`,
      );
    out.push({ cluster: status.cluster || cluster!, node: node!, services: status.services });
  }
  return out;
}

export function formatServices(all: ClusterServices[]): string {
  const lines: string[] = [];
  for (const c of all) {
    lines.push(`cluster ${c.cluster} (as seen by ${c.node}): ${c.services.length} services`);
    for (const s of c.services) lines.push(...formatService(s, c.cluster));
  }
  return lines.join('\n');
}

function formatService(s: ServiceView, localCluster: string): string[] {
  const st = s.settings;
  const notes = st.global ? `global, shared=${st.shared}, affinity=${st.affinity}` : 'not global';
  const lines = [
    `  ${s.namespace}/${s.name}  [${notes}${st.invalid.length ? `; ignored: ${st.invalid.join(', ')}` : ''}]`,
  ];
  for (const f of s.frontends)
    lines.push(
      `    frontend ${f.addr}:${f.port}/${f.protocol}${f.portName ? ` (${f.portName})` : ''}`,
    );
  const byCluster = new Map<string, typeof s.backends>();
  for (const b of s.backends)
    byCluster.set(b.cluster || localCluster, [
      ...(byCluster.get(b.cluster || localCluster) ?? []),
      b,
    ]);
  if (byCluster.size === 0) lines.push('    no backends: new connections are refused');
  for (const [cluster, bs] of byCluster) {
    lines.push(`    backends in ${cluster}${cluster === localCluster ? ' (local)' : ''}:`);
    for (const b of bs) {
      const ports = Object.entries(b.ports)
        .map(([n, p]) => `${n || '-'}=${p.port}/${p.protocol}`)
        .join(' ');
      lines.push(
        `      ${b.addr.padEnd(15)} ${(b.ready ? 'ready' : 'not-ready').padEnd(9)} ${b.inUse ? 'in use ' : 'standby'} ${ports}${b.podName ? `  pod ${b.podName}` : ''}`,
      );
    }
  }
  return lines;
}

export function register(program: Command): void {
  const service = program.command('service').description('Inspect load-balanced services');
  service
    .command('list')
    .description('Services with frontends, backends by cluster, annotations and backends in use')
    .option('--lab <name>', 'which lab (default: the only one running)')
    .option('--cluster <name>', 'one cluster of the lab (default: every cluster)')
    .option('--socket <path>', "an agent's endpoint socket, outside a lab")
    .addOption(
      new Option('--output <format>', 'output format').choices(['json', 'table']).default('table'),
    )
    .addHelpText(
      'after',
      `
"in use" backends are those the affinity selects now (service.cilium.io/affinity: local uses
remote backends only while no local backend is ready; remote is the mirror; none uses all).`,
    )
    .action(async (opts: { lab?: string; cluster?: string; socket?: string; output: string }) => {
      try {
        const all = await listServices(opts);
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify({ clusters: all }, null, 2) + '\n'
            : formatServices(all) + '\n',
        );
      } catch (err) {
        if (!(err instanceof ServiceCliError)) throw err;
        process.stderr.write(`isthmus: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
