// Drives the real `isthmus policy` command as a user would.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stepSources } from '../agent/policy/conformance/model.ts';
import { runCase } from '../agent/policy/conformance/run.ts';
import { CILIUM_CASES } from '../agent/policy/conformance/cilium-cases.ts';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-h3-cli-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function isthmus(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'cli/main.ts', 'policy', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function writeCase(name: string): string[] {
  const c = CILIUM_CASES.find((x) => x.name.includes(name))!;
  return stepSources(c, 0).flatMap((s) => {
    const file = join(dir, `${s.cluster}.yaml`);
    writeFileSync(file, s.text);
    return ['--cluster', `${s.cluster}=${file}`];
  });
}

test('reachability JSON: one row per ordered pair per probe, equal to the conformance path', (t) => {
  const args = writeCase('cross-cluster matchLabels');
  const r = isthmus(
    'reachability',
    ...args,
    '--probe',
    '80/TCP',
    '--probe',
    '81/UDP',
    '--output',
    'json',
  );
  t.is(r.code, 0, r.err);
  const out = JSON.parse(r.out) as {
    probes: {
      from: string;
      to: string;
      port: number;
      protocol: string;
      allowed: boolean;
      reason: string;
    }[];
  };
  t.is(out.probes.length, 6 * 5 * 2);
  const row = out.probes.find((p) => p.from === 'c2/x/b' && p.to === 'c1/x/a' && p.port === 80)!;
  t.like(row, { protocol: 'TCP', allowed: true });
  t.regex(row.reason, /CiliumNetworkPolicy\/x\/from-c2-b spec\.ingress\[0\]/);
  t.false(
    out.probes.find((p) => p.from === 'c2/y/b' && p.to === 'c1/x/a' && p.port === 80)!.allowed,
  );
  t.deepEqual(
    runCase(CILIUM_CASES.find((x) => x.name.includes('cross-cluster matchLabels'))!).mismatches,
    [],
  );
});

test('reachability table and explain are readable', (t) => {
  const args = writeCase('deny beats allow');
  const table = isthmus('reachability', ...args, '--probe', '80/TCP');
  t.is(table.code, 0, table.err);
  t.regex(table.out, /probe 80\/TCP/);
  t.regex(table.out, /c1\/x\/b\s+X/);
  const ex = isthmus('explain', ...args, '--from', 'c1/x/b', '--to', 'c1/x/a', '--probe', '80/TCP');
  t.is(ex.code, 0, ex.err);
  t.regex(ex.out, /DENIED/);
  t.regex(ex.out, /deny\s+via identity lookup/);
  t.regex(ex.out, /CiliumNetworkPolicy\/x\/deny-b spec\.ingressDeny\[0\]/);
  const json = JSON.parse(
    isthmus('explain', ...args, '--from', 'c1/y/b', '--to', 'c1/x/a', '--output', 'json').out,
  ) as { allowed: boolean; ingress: { matches: { rules: { policy: string }[] }[] } };
  t.true(json.allowed);
  t.is(json.ingress.matches[0]?.rules[0]?.policy, 'CiliumNetworkPolicy/x/allow-all');
});

test('bad input: malformed YAML, unknown kind, bad probe give a clear message and a non-zero exit', (t) => {
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'kind: Namespace\nmetadata: {name: x}\n---\nkind: Pod\nmetadata: {name: [oops\n',
  );
  const r1 = isthmus('reachability', '--cluster', `c1=${bad}`);
  t.not(r1.code, 0);
  t.regex(r1.err, /bad\.yaml, document 2: malformed YAML/);
  const unknown = join(dir, 'unknown.yaml');
  writeFileSync(unknown, 'kind: Deployment\nmetadata: {name: d}\n');
  const r2 = isthmus('reachability', '--cluster', `c1=${unknown}`);
  t.not(r2.code, 0);
  t.regex(r2.err, /unknown\.yaml, document 1: unknown kind "Deployment"/);
  const r3 = isthmus('reachability', '--cluster', `c1=${unknown}`, '--probe', '80/ICMP');
  t.not(r3.code, 0);
  t.regex(r3.err, /bad probe "80\/ICMP"/);
  const r4 = isthmus('reachability', '--cluster', `c1=${join(dir, 'missing.yaml')}`);
  t.regex(r4.err, /cannot read .*missing\.yaml for cluster c1/);
});
