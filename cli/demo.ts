// `isthmus demo`: a tour of the lab. Brings a lab up (or reuses a ready one), applies a sample
// application and then policies step by step with `lab kubectl`, and after each step shows the
// real reachability matrix from `lab probe`, checked against `isthmus policy reachability` on the
// same objects, so the tour says honestly whether the datapath enforces what the policies say.
import { existsSync, readFileSync } from 'node:fs';
import { Command } from 'commander';
import { controlPlanePaths } from '../integration/lab/control-plane.ts';
import { loadMesh } from '../agent/policy/load.ts';
import { formatTable, parseProbe, reachability } from '../agent/policy/reachability.ts';
import { LabConfigError, type LabPlan } from '../integration/lab/config.ts';
import { kubectlCapture } from '../integration/lab/kubectl.ts';
import { LabError } from '../integration/lab/lab.ts';
import { readRecord } from '../integration/lab/record.ts';
import { labPods, labStatus, type ProbeRow } from '../integration/lab/status.ts';
import { labNames } from '../integration/lab/supervisor.ts';
import { DEMO_NAMESPACES, DEMO_PODS, DEMO_STEPS, type DemoStep } from './demo-steps.ts';
import { globalServiceTour } from './demo-global.ts';
import { labProbe, labUp, loadPlan } from './lab.ts';
import { captureUnderlay, formatCapture } from './demo-capture.ts';

const say = (line = '') => process.stdout.write(`${line}\n`);

export interface StepOutcome {
  title: string;
  rows: ProbeRow[];
  /** what `isthmus policy reachability` says for the same objects and probes */
  expected: ProbeRow[];
  /** rows where the packets disagree with the policy engine's verdict */
  disagreements: Array<{ row: ProbeRow; expected: boolean }>;
}

async function ensureLab(plan: LabPlan): Promise<void> {
  if (!(await labNames()).includes(plan.name)) return labUp(plan, say);
  const status = await labStatus(plan.name);
  if (!status?.ready)
    throw new LabError(
      `lab ${plan.name} exists but is not ready: see \`isthmus lab status --name ${plan.name}\`, or remove it with \`isthmus lab down --name ${plan.name}\``,
      'ISTHMUS_LAB_EXISTS',
    );
  say(`reusing the running lab ${plan.name}`);
}

async function kubectl(
  plan: LabPlan,
  cluster: string,
  args: string[],
  stdin = '',
): Promise<string> {
  const r = await kubectlCapture(plan, cluster, args, stdin);
  if (r.code !== 0)
    throw new LabError(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`, 'ISTHMUS_LAB_POD');
  return r.stdout;
}

/** Waits until every demo pod runs with an IP (the kubelet reports it). */
async function waitForDemoPods(plan: LabPlan, cluster: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = readRecord(plan.runDir);
    const running = new Set(
      (record ? labPods(record) : [])
        .filter((p) => p.cluster === cluster && p.ip)
        .map((p) => `${p.namespace}/${p.name}`),
    );
    const missing = DEMO_PODS.filter((p) => !running.has(p));
    if (!missing.length) return;
    if (Date.now() > deadline)
      throw new LabError(
        `demo pods not running after ${timeoutMs / 1000} s: ${missing.join(', ')}${lastKubeletError(plan, cluster)}`,
        'ISTHMUS_LAB_POD',
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The kubelet's last pod failure, so a stuck tour says why. */
function lastKubeletError(plan: LabPlan, cluster: string): string {
  const c = plan.clusters.find((x) => x.name === cluster);
  if (!c) return '';
  const log = controlPlanePaths(plan, c).kubeletLog;
  const line = (existsSync(log) ? readFileSync(log, 'utf8') : '')
    .split('\n')
    .filter((l) => l.includes('pod-sync-failed'))
    .pop();
  return line ? `\n  last kubelet error (${log}): ${line}` : `\n  see ${log}`;
}

/** What `isthmus policy reachability` says for the objects the cluster holds now. */
async function expectedRows(plan: LabPlan, step: DemoStep): Promise<ProbeRow[]> {
  const list = JSON.parse(
    await kubectl(plan, step.cluster, [
      'get',
      'namespaces,pods,networkpolicies',
      '-A',
      '-o',
      'json',
    ]),
  ) as {
    items: Array<{
      kind: string;
      metadata: { name: string; namespace?: string };
      status?: { podIP?: string };
    }>;
  };
  const items = list.items.filter(
    (o) =>
      (o.kind !== 'Pod' ||
        (DEMO_PODS.includes(`${o.metadata.namespace}/${o.metadata.name}`) && o.status?.podIP)) &&
      (o.kind !== 'Namespace' ||
        DEMO_NAMESPACES.includes(o.metadata.name) ||
        o.metadata.name === 'default'),
  );
  const id = plan.clusters.find((c) => c.name === step.cluster)!.id;
  const text = JSON.stringify({
    kind: 'List',
    items: [{ kind: 'Cluster', metadata: { name: step.cluster }, spec: { id } }, ...items],
  });
  const rows = reachability(
    loadMesh([{ cluster: step.cluster, file: 'lab objects', text }]),
    step.probes.map(parseProbe),
  );
  return rows.map((r) => ({ ...r, protocol: r.protocol as ProbeRow['protocol'] }));
}

const rowKey = (r: { from: string; to: string; port: number; protocol: string }) =>
  `${r.from} ${r.to} ${r.port}/${r.protocol}`;

export async function runStep(plan: LabPlan, step: DemoStep): Promise<StepOutcome> {
  await kubectl(plan, step.cluster, ['apply', '-f', '-'], step.yaml);
  await waitForDemoPods(plan, step.cluster);
  const expectedList = await expectedRows(plan, step);
  const expected = new Map(expectedList.map((r) => [rowKey(r), r.allowed]));
  const { rows } = await labProbe(plan.name, step.probes);
  const demoRows = rows.filter((r) => expected.has(rowKey(r)));
  const disagreements = demoRows
    .filter((r) => expected.get(rowKey(r)) !== r.allowed)
    .map((row) => ({ row, expected: expected.get(rowKey(row))! }));
  return { title: step.title, rows: demoRows, expected: expectedList, disagreements };
}

function report(outcome: StepOutcome): void {
  say(formatTable(outcome.rows).trimEnd());
  const leaks = outcome.disagreements.filter((d) => !d.expected);
  const blocks = outcome.disagreements.filter((d) => d.expected);
  if (!outcome.disagreements.length) {
    say(
      '=> the packets match what the policies say (isthmus policy reachability on the same objects).',
    );
    return;
  }
  say('What the policies say (isthmus policy reachability on the same objects):');
  say(formatTable(outcome.expected).trimEnd());
  if (leaks.length)
    say(
      `=> NOTE: ${leaks.length} connection(s) the policies deny still went through, e.g. ${leaks[0]!.row.from} -> ${leaks[0]!.row.to} ${leaks[0]!.row.port}/${leaks[0]!.row.protocol}.\n` +
        '   Policy enforcement is not wired into the lab agents yet: the policies are stored and evaluated\n' +
        '   (isthmus policy reachability), but the datapath does not apply them to packets so far.',
    );
  if (blocks.length)
    say(
      `=> WARNING: ${blocks.length} connection(s) the policies allow were not answered, e.g. ${blocks[0]!.row.from} -> ${blocks[0]!.row.to}: ${blocks[0]!.row.reason}`,
    );
}

/** Final step: what crosses the underlay while the pods talk (only WireGuard, when encrypted). */
async function showCapture(plan: LabPlan): Promise<void> {
  say(`\n== last step: the underlay while the pods talk`);
  say('Pod traffic between nodes is encrypted: a capture on the underlay sees only WireGuard.');
  say(formatCapture(plan, await captureUnderlay(plan, ['80/TCP', '8080/TCP'])));
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'A tour: a lab, a sample application, policies step by step, the real reachability after each',
    )
    .option('--config <file>', 'lab config YAML (default: clusters c1 and c2 of two nodes each)')
    .option('--name <lab>', 'lab name (default: the config name, "demo")')
    .action(async (opts: { config?: string; name?: string }) => {
      try {
        const plan = loadPlan(opts.config, opts.name);
        await ensureLab(plan);
        // The tour runs in the lab's first cluster; a rerun starts from the application alone.
        const cluster = plan.clusters[0]!.name;
        await kubectl(plan, cluster, [
          'delete',
          'networkpolicy',
          '--all',
          '-n',
          'shop',
          '--ignore-not-found',
        ]).catch(() => '');
        for (const [i, demoStep] of DEMO_STEPS.entries()) {
          const step = { ...demoStep, cluster };
          say(`\n== step ${i + 1}/${DEMO_STEPS.length}: ${step.title}`);
          say(step.explain);
          say(
            `$ isthmus lab kubectl ${step.cluster} -- apply -f -   (${(step.yaml.match(/^kind:/gm) ?? []).length} objects)`,
          );
          report(await runStep(plan, step));
        }
        if (plan.encryption === 'wireguard') await showCapture(plan);
        say(`\n== global service: answers from both clusters, then failover`);
        await globalServiceTour(plan, say);
        const n = plan.name === 'demo' ? '' : ` --name ${plan.name}`;
        say(`\nThe lab ${plan.name} keeps running. Explore it:
  isthmus lab status${n}
  isthmus lab kubectl${n} ${cluster} -- get pods -A -o wide
  isthmus lab kubectl${n} ${cluster} -- get networkpolicies -n shop
  isthmus lab probe${n} --probe 80/TCP --probe 8080/TCP
  isthmus policy explain ...        (why a connection is allowed or denied)
Take it down with:
  isthmus lab down${n}`);
      } catch (err) {
        if (!(err instanceof LabError || err instanceof LabConfigError)) throw err;
        process.stderr.write(`isthmus: ${err.message}\n`);
        process.exitCode = 1;
      }
    });
}
