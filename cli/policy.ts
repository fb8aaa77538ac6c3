// `isthmus policy reachability|explain`: load cluster YAML, run the policy engine and the
// datapath lookup model, print verdicts.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { PolicyError } from '../agent/policy/errors.ts';
import { loadMesh, type ClusterSource } from '../agent/policy/load.ts';
import {
  explain,
  formatTable,
  parseProbe,
  reachability,
  type Explanation,
} from '../agent/policy/reachability.ts';

const collect = (v: string, prev: string[]) => [...prev, v];

function readSources(specs: string[]): ClusterSource[] {
  if (specs.length === 0)
    throw new PolicyError('POLICY_INPUT', 'no input: give at least one --cluster NAME=FILE');
  return specs.map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1)
      throw new PolicyError(
        'POLICY_INPUT',
        `bad --cluster ${JSON.stringify(spec)}: write NAME=FILE, e.g. c1=cluster1.yaml`,
      );
    const cluster = spec.slice(0, eq);
    const file = spec.slice(eq + 1);
    try {
      return { cluster, file, text: readFileSync(file, 'utf8') };
    } catch (cause) {
      throw new PolicyError(
        'POLICY_INPUT',
        `cannot read ${file} for cluster ${cluster}: ${(cause as Error).message}`,
        { cause },
      );
    }
  });
}

/** Expected failures print one clear line and exit non-zero; anything else is a bug and rethrows. */
function run(action: () => void): void {
  try {
    action();
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    process.stderr.write(`isthmus: ${err.message}\n`);
    process.exitCode = err.code === 'POLICY_INVALID' ? 3 : 2;
  }
}

function formatExplanation(e: Explanation): string {
  const lines = [
    `${e.from} -> ${e.to} ${e.port}/${e.protocol}: ${e.allowed ? 'ALLOWED' : 'DENIED'}`,
  ];
  for (const s of [e.egress, e.ingress]) {
    lines.push(
      `  ${s.direction} at ${s.endpoint}: ${!s.enforced ? 'not isolated (no policy selects it for ' + s.direction + ')' : s.allowed ? 'allowed' : 'denied'}`,
    );
    if (s.enforced) lines.push(`    selected by: ${s.policies.join(', ')}`);
    if (s.prefix) lines.push(`    peer address falls in prefix ${s.prefix}`);
    if (s.note === 'own-node') lines.push("    traffic from the pod's own node is always allowed");
    if (s.enforced && s.matches.length === 0 && s.note !== 'own-node')
      lines.push('    no entry matches: default deny');
    for (const m of s.matches) {
      lines.push(
        `    ${m.deny ? 'deny ' : 'allow'} via ${m.lookup} lookup: ${m.peerDescription}, ${m.entry}`,
      );
      for (const r of m.rules) lines.push(`      from ${r.policy} ${r.path}`);
    }
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  const policy = program.command('policy').description('Network policy analysis');
  policy
    .command('reachability')
    .description(
      'Verdict for every ordered pair of pods per probe, computed through the datapath lookup model',
    )
    .option(
      '--cluster <NAME=FILE>',
      'cluster name and a multi-document YAML file (repeatable); cluster IDs come from a `kind: Cluster` document (spec.id) or are 1..N in order of appearance',
      collect,
      [],
    )
    .option('--probe <PORT/PROTO>', 'probe such as 80/TCP (repeatable)', collect, [])
    .addOption(
      new Option('--output <format>', 'output format').choices(['json', 'table']).default('table'),
    )
    .action((opts: { cluster: string[]; probe: string[]; output: string }) =>
      run(() => {
        const probes = (opts.probe.length > 0 ? opts.probe : ['80/TCP']).map(parseProbe);
        const rows = reachability(loadMesh(readSources(opts.cluster)), probes);
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify({ probes: rows }, null, 2) + '\n'
            : formatTable(rows),
        );
      }),
    );
  policy
    .command('explain')
    .description('The decision for one connection and the policy rules behind it')
    .option(
      '--cluster <NAME=FILE>',
      'cluster name and a multi-document YAML file (repeatable)',
      collect,
      [],
    )
    .requiredOption('--from <CLUSTER/NS/POD>', 'source pod')
    .requiredOption('--to <CLUSTER/NS/POD>', 'destination pod')
    .option('--probe <PORT/PROTO>', 'port and protocol', '80/TCP')
    .addOption(
      new Option('--output <format>', 'output format').choices(['json', 'text']).default('text'),
    )
    .action(
      (opts: { cluster: string[]; from: string; to: string; probe: string; output: string }) =>
        run(() => {
          const e = explain(
            loadMesh(readSources(opts.cluster)),
            opts.from,
            opts.to,
            parseProbe(opts.probe),
          );
          process.stdout.write(
            opts.output === 'json' ? JSON.stringify(e, null, 2) + '\n' : formatExplanation(e),
          );
        }),
    );
}
