// `isthmus demo` end to end on its own lab: every step applies, probes real traffic and compares
// it with `policy reachability` on the objects the API holds; the lab runs the eBPF datapath, so
// after every step (no policy, default deny, same-namespace allow, cross-namespace allow) the
// packets must match; the lab stays up for the user, and `lab down` removes it completely.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { planLab } from '../integration/lab/config.ts';
import { downLab } from '../integration/lab/lab.ts';
import { labLeftovers, rootFootprint } from '../integration/lab/leftovers.ts';
import { labStatus } from '../integration/lab/status.ts';
import { repoRoot } from '../integration/lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../integration/lab/testing.ts';
import { DEMO_STEPS } from './demo-steps.ts';

const name = uniqueLabName('demo');
const dir = mkdtempSync(join(tmpdir(), 'isthmus-demo-test-'));
const configFile = join(dir, 'lab.yaml');
const input = {
  name,
  encryption: 'none' as const,
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
};
writeFileSync(configFile, JSON.stringify(input));

function isthmus(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(repoRoot(), 'cli/main.ts'), ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

test.before(async () => {
  await ensureBuilt();
});

test.after.always(async () => {
  await downLab(name);
  rmSync(dir, { recursive: true, force: true });
});

test.serial('the demo tours a fresh lab step by step and leaves it running', async (t) => {
  const run = await isthmus(['demo', '--config', configFile]);
  t.is(run.code, 0, run.out);
  const sections = run.out.split(/\n== step \d+\/\d+: /).slice(1);
  t.is(sections.length, DEMO_STEPS.length, run.out);
  sections.forEach((section, i) => {
    t.true(section.startsWith(DEMO_STEPS[i]!.title), section);
    for (const probe of DEMO_STEPS[i]!.probes) t.true(section.includes(`probe ${probe}`), section);
    // every connection the policies allow is answered: the echo servers serve every port
    t.false(section.includes('WARNING'), section);
    // the lab runs the eBPF datapath: packets obey every policy step
    t.true(section.includes('the packets match what the policies say'), section);
  });
  t.true(sections[0]!.includes('the packets match what the policies say'), sections[0]);
  t.regex(run.out, new RegExp(`isthmus lab down --name ${name}`));
  const status = await labStatus(name);
  t.true(status?.ready);
  t.deepEqual(status!.clusters[0]!.pods.map((p) => p.name).sort(), [
    'shop/backend',
    'shop/db',
    'shop/frontend',
    'tools/client',
  ]);
});

test.serial(
  'a second run reuses the lab and starts again from the application alone',
  async (t) => {
    const run = await isthmus(['demo', '--config', configFile]);
    t.is(run.code, 0, run.out);
    t.regex(run.out, new RegExp(`reusing the running lab ${name}`));
    const first = run.out.split(/\n== step \d+\/\d+: /)[1]!;
    t.true(first.includes('the packets match what the policies say'), first);
  },
);

test.serial('lab down after the demo leaves nothing', async (t) => {
  const down = await isthmus(['lab', 'down', '--name', name]);
  t.is(down.code, 0, down.out);
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(planLab(input)), []);
});
