import test from 'ava';
import { CILIUM_CASES } from './cilium-cases.ts';
import { fullPod } from './model.ts';
import { runCase } from './run.ts';
import { UPSTREAM_CASES } from './upstream-cases.ts';
import { UPSTREAM_EXCLUDED, UPSTREAM_TEST_COUNT, UPSTREAM_TESTS } from './upstream-index.ts';

test('every upstream truth-table test is encoded or excluded with a reason, and the count matches', (t) => {
  t.is(UPSTREAM_TESTS.length, UPSTREAM_TEST_COUNT);
  t.is(new Set(UPSTREAM_TESTS).size, UPSTREAM_TEST_COUNT);
  const encoded = UPSTREAM_CASES.map((c) => c.name);
  t.is(new Set(encoded).size, encoded.length, 'a case is encoded twice');
  for (const name of encoded)
    t.true(UPSTREAM_TESTS.includes(name), `encoded case not in the upstream list: ${name}`);
  for (const name of Object.keys(UPSTREAM_EXCLUDED))
    t.true(UPSTREAM_TESTS.includes(name), `excluded case not upstream: ${name}`);
  for (const name of UPSTREAM_TESTS) {
    const n = (encoded.includes(name) ? 1 : 0) + (name in UPSTREAM_EXCLUDED ? 1 : 0);
    t.is(n, 1, `upstream test neither encoded nor excluded (or both): ${name}`);
  }
});

for (const c of [...UPSTREAM_CASES, ...CILIUM_CASES]) {
  test(`conformance: ${c.name}`, (t) => {
    const { mismatches, checked } = runCase(c);
    t.true(checked > 0);
    t.deepEqual(mismatches, []);
  });
}

test('the runner reports a wrong expectation (the suite can fail)', (t) => {
  const c = UPSTREAM_CASES[0]!;
  const flipped = {
    ...c,
    steps: [{ ...c.steps[0]!, probes: [{ ...c.steps[0]!.probes[0]!, expect: [] }] }],
  };
  const { mismatches } = runCase(flipped);
  // default-deny-ingress denies the 6 pairs into x: each must be reported against "all allowed"
  t.is(mismatches.length, 6);
  t.true(mismatches.every((m) => m.to.startsWith('c1/x/') && m.expected && !m.actual));
});

test('cases hold under another address plan, as a lab assigns (pods packed per cluster /24)', (t) => {
  for (const c of [...UPSTREAM_CASES, ...CILIUM_CASES]) {
    const ips = new Map<string, string>();
    const pods = c.pods.map(fullPod).sort();
    pods.forEach((p, i) => ips.set(p, `10.${p.startsWith('c2/') ? 2 : 1}.7.${20 + i}`));
    t.deepEqual(runCase(c, ips).mismatches, [], c.name);
  }
});
