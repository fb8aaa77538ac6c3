// `isthmus lab up|down|status|kubectl|probe`: the lab on this machine (DESIGN.md "The lab").
// Thin: parses flags and calls integration/lab.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import YAML from 'yaml';
import { formatTable, parseProbe } from '../agent/policy/reachability.ts';
import {
  LabConfigError,
  parseLabConfigYaml,
  planLab,
  RUN_ROOT,
  type LabConfigInput,
  type LabPlan,
} from '../integration/lab/config.ts';
import { waitForDatapathConvergence } from '../integration/lab/convergence.ts';
import { kubectlInteractive } from '../integration/lab/kubectl.ts';
import { downLab, LabError } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import {
  labPods,
  labStatus,
  probeAllPairs,
  type LabStatus,
  type ProbeRow,
} from '../integration/lab/status.ts';
import { resolveLabName, supervise, upDetached } from '../integration/lab/supervisor.ts';

const collect = (v: string, prev: string[]) => [...prev, v];
const nameOption = () => new Option('--name <lab>', 'which lab (default: the only one running)');
const outputOption = () =>
  new Option('--output <format>', 'output format').choices(['json', 'table']).default('table');

/** Expected failures print one line and set a non-zero exit code; anything else is a bug. */
async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (!(err instanceof LabError || err instanceof LabConfigError)) throw err;
    process.stderr.write(`isthmus: ${err.message}\n`);
    process.exitCode = err instanceof LabConfigError ? 2 : 1;
  }
}

export function loadPlan(configFile: string | undefined, name: string | undefined): LabPlan {
  let text = '';
  if (configFile) {
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (cause) {
      throw new LabConfigError(
        `cannot read lab config ${configFile}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
  }
  const plan = parseLabConfigYaml(text); // validates, with YAML errors as LabConfigError
  if (!name || name === plan.name) return plan;
  return planLab({ ...((YAML.parse(text) ?? {}) as LabConfigInput), name });
}

/** `lab up`: the supervisor starts the lab; progress is printed until it is ready. */
export async function labUp(plan: LabPlan, print: (line: string) => void): Promise<void> {
  print(
    `starting lab ${plan.name} (${plan.clusters.map((c) => `${c.name}: ${c.nodes.length} nodes`).join(', ')})`,
  );
  if (plan.encryption === 'wireguard')
    print('  encryption: wireguard between nodes (strict mode; `isthmus wireguard status`)');
  await upDetached(plan, print);
}

export function formatStatus(s: LabStatus): string {
  const out = [`lab ${s.name}: ${s.ready ? 'ready' : 'NOT ready'}  (underlay ${s.underlay.cidr})`];
  for (const c of s.clusters) {
    const api = c.controlPlane.apiServer;
    out.push(
      `cluster ${c.name} (id ${c.id}, pods ${c.podCIDR}): ${c.ready ? 'ready' : 'NOT ready'}`,
      `  control plane ${c.controlPlane.netns} ${c.controlPlane.ip}` +
        (api ? `  API ${api.address} ${api.ready ? 'up' : 'DOWN'}` : '') +
        (c.controlPlane.kubelet ? `  kubelet ${c.controlPlane.kubelet.ready ? 'up' : 'DOWN'}` : ''),
    );
    for (const n of c.nodes)
      out.push(
        `  node ${n.name.padEnd(14)} ${n.ip.padEnd(15)} ${n.podCIDR.padEnd(18)} agent ${n.ready ? 'up' : 'DOWN'}  encryption ${n.encryption ?? '-'}`,
      );
    for (const p of c.pods) out.push(`  pod  ${p.name.padEnd(24)} ${p.ip.padEnd(15)} on ${p.node}`);
  }
  return out.join('\n') + '\n';
}

/** `lab probe` as a library call: waits on the convergence hook, then real traffic. */
export async function labProbe(
  name: string,
  probes: string[],
): Promise<{ rows: ProbeRow[]; note?: string }> {
  const record = readRecord(`${RUN_ROOT}/${name}`);
  if (!record)
    throw new LabError(`no lab named ${name}: see \`isthmus lab status\``, 'ISTHMUS_LAB_POD');
  const convergence = await waitForDatapathConvergence(name);
  const parsed = (probes.length ? probes : ['80/TCP']).map((p) => {
    const probe = parseProbe(p);
    if (probe.protocol === 'SCTP')
      throw new LabError(`probe ${p}: the lab probes TCP and UDP only`, 'ISTHMUS_LAB_POD');
    return { port: probe.port, protocol: probe.protocol };
  });
  const rows = await probeAllPairs(labPods(record), parsed);
  return {
    rows,
    ...(!convergence.converged && {
      note: `datapath not converged: ${convergence.pending.join('; ')}`,
    }),
  };
}

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .description(
      'Several clusters of several nodes on this machine, built from network namespaces',
    );

  lab
    .command('up')
    .description('Start a lab in the background and return once it is ready')
    .option('--config <file>', 'lab config YAML (default: clusters c1 and c2 of two nodes each)')
    .option('--name <lab>', 'lab name, overriding the config\'s (default "demo")')
    .addHelpText(
      'after',
      `
The config (YAML; every field optional):
  name: demo              # prefix of every namespace, mount and file of the lab
  encryption: wireguard   # or none
  underlay: 172.30.0.0/24 # nodes, control planes and the world host
  clusters:
  - {name: c1, id: 1, podCIDR: 10.1.0.0/16, nodes: 2}   # each node gets a /24
  - {name: c2, id: 2, podCIDR: 10.2.0.0/16, nodes: 2}
Refuses a second lab of the same name. Progress is printed while the lab starts.`,
    )
    .action((opts: { config?: string; name?: string }) =>
      run(async () => {
        const plan = loadPlan(opts.config, opts.name);
        await labUp(plan, (line) => process.stdout.write(`${line}\n`));
        process.stdout.write(
          `lab ${plan.name} is ready. Try:\n  isthmus lab status\n  isthmus lab kubectl ${plan.clusters[0]!.name} -- get nodes\n  isthmus lab probe --probe 80/TCP\n  isthmus lab down\n`,
        );
      }),
    );

  lab
    .command('down')
    .description('Remove the lab completely: processes, namespaces, mounts, files')
    .addOption(nameOption())
    .action((opts: { name?: string }) =>
      run(async () => {
        const name = await resolveLabName(opts.name);
        await downLab(name);
        process.stdout.write(`lab ${name} removed\n`);
      }),
    );

  lab
    .command('status')
    .description(
      'Clusters, nodes, agents, control planes and pods of the lab; "ready" once all are up',
    )
    .addOption(nameOption())
    .addOption(outputOption())
    .action((opts: { name?: string; output: string }) =>
      run(async () => {
        const name = await resolveLabName(opts.name);
        const status = await labStatus(name);
        if (!status)
          throw new LabError(
            `lab ${name} has no record (half removed?): run \`isthmus lab down --name ${name}\``,
            'ISTHMUS_LAB_POD',
          );
        process.stdout.write(
          opts.output === 'json' ? JSON.stringify(status, null, 2) + '\n' : formatStatus(status),
        );
        if (!status.ready) process.exitCode = 3;
      }),
    );

  lab
    .command('kubectl')
    .description(
      "Run the machine's kubectl against a cluster of the lab: isthmus lab kubectl c1 -- get pods -A",
    )
    .argument('<cluster>', 'cluster name, e.g. c1')
    .argument('[args...]', 'kubectl arguments (after --)')
    .addOption(nameOption())
    .allowUnknownOption()
    .action((cluster: string, args: string[], opts: { name?: string }) =>
      run(async () => {
        const name = await resolveLabName(opts.name);
        const record = readRecord(`${RUN_ROOT}/${name}`);
        if (!record) throw new LabError(`no lab named ${name}`, 'ISTHMUS_LAB_POD');
        process.exitCode = await kubectlInteractive(record.plan, cluster, args);
      }),
    );

  lab
    .command('probe')
    .description(
      'Real traffic between every ordered pair of pods in the lab, once the datapath converged',
    )
    .option('--probe <PORT/PROTO>', 'probe such as 80/TCP or 53/UDP (repeatable)', collect, [])
    .addOption(nameOption())
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
JSON output: {"probes":[{"from":"c1/ns/a","to":"c1/ns/b","port":80,"protocol":"TCP","allowed":true,"reason":"echoed"}]},
one row per ordered pair of distinct pods per probe, as \`isthmus policy reachability\` prints.
A drop is confirmed by two retries before it is reported (no answer in 0.5, 1 and 2 s).`,
    )
    .action((opts: { probe: string[]; name?: string; output: string }) =>
      run(async () => {
        const name = await resolveLabName(opts.name);
        const { rows, note } = await labProbe(name, opts.probe);
        if (note) process.stderr.write(`isthmus: warning: ${note}\n`);
        process.stdout.write(
          opts.output === 'json'
            ? JSON.stringify({ probes: rows }, null, 2) + '\n'
            : formatTable(rows),
        );
      }),
    );

  lab
    .command('supervise', { hidden: true })
    .description('(internal) the detached process behind `lab up`')
    .requiredOption('--plan <file>')
    .action((opts: { plan: string }) => supervise(opts.plan));
}
