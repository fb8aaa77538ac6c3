import test from 'ava';
import fc from 'fast-check';
import { clusterOfLabels, decodeLabels, encodeLabels, LabelFormatError } from './labels.ts';
import type { Label } from './types.ts';

// Identity keys as logged by real Cilium agents/operators (identity allocation logs in Cilium's
// docs and an AKS troubleshooting log): the canonical form our codec must reproduce byte for byte.
const GOLDEN = [
  'k8s:class=tiefighter;k8s:io.cilium.k8s.policy.cluster=default;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default;k8s:org=empire;',
  'k8s:app.kubernetes.io/name=hubble-relay;k8s:app.kubernetes.io/part-of=retina;k8s:io.cilium.k8s.namespace.labels.addonmanager.kubernetes.io/mode=Reconcile;k8s:io.cilium.k8s.namespace.labels.control-plane=true;k8s:io.cilium.k8s.namespace.labels.kubernetes.azure.com/managedby=aks;k8s:io.cilium.k8s.namespace.labels.kubernetes.io/cluster-service=true;k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=kube-system;k8s:io.cilium.k8s.policy.cluster=default;k8s:io.cilium.k8s.policy.serviceaccount=hubble-relay;k8s:io.kubernetes.pod.namespace=kube-system;k8s:k8s-app=hubble-relay;k8s:kubernetes.azure.com/managedby=aks;k8s:pod-template-hash=6c6879b456;',
  // DESIGN.md's example
  'k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c2;k8s:io.kubernetes.pod.namespace=prod;',
];

for (const [i, text] of GOLDEN.entries()) {
  test(`golden label string ${i} decodes and re-encodes byte for byte`, (t) => {
    const r = decodeLabels(text);
    if (!r.ok) return t.fail(r.error.detail);
    t.is(encodeLabels(r.value), text);
    // shuffled input still encodes canonically
    t.is(encodeLabels([...r.value].reverse()), text);
  });
}

test('labels in another order decode to the canonical order (Cilium sorts by key)', (t) => {
  // a writer sorting whole items puts `app.kubernetes.io/name` before `app` ('.' < '=')
  const r = decodeLabels('k8s:app.kubernetes.io/name=db;k8s:app=db;');
  if (!r.ok) return t.fail(r.error.detail);
  t.is(encodeLabels(r.value), 'k8s:app=db;k8s:app.kubernetes.io/name=db;');
});

test('the cluster label is found', (t) => {
  const r = decodeLabels(GOLDEN[2]!);
  t.true(r.ok);
  if (r.ok) t.is(clusterOfLabels(r.value), 'c2');
});

test('a label with an empty value keeps its "=" (reserved:host=;)', (t) => {
  t.is(encodeLabels([{ source: 'reserved', key: 'host', value: '' }]), 'reserved:host=;');
  t.deepEqual(decodeLabels('reserved:host=;'), {
    ok: true,
    value: [{ source: 'reserved', key: 'host', value: '' }],
  });
});

const label: fc.Arbitrary<Label> = fc.record({
  source: fc.constantFrom('k8s', 'reserved', 'cidr', 'unspec'),
  key: fc.stringMatching(/^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,30}$/),
  value: fc.stringMatching(/^[a-zA-Z0-9._=:-]{0,20}$/),
});

test('round trip: decode(encode(labels)) is the sorted label set', (t) => {
  fc.assert(
    fc.property(
      fc.uniqueArray(label, {
        minLength: 1,
        maxLength: 12,
        selector: (l) => `${l.source}:${l.key}`,
      }),
      (labels) => {
        const text = encodeLabels(labels);
        const back = decodeLabels(text);
        t.true(back.ok);
        if (back.ok) {
          t.is(back.value.length, labels.length);
          t.is(encodeLabels(back.value), text);
          t.deepEqual(
            back.value.map((l) => JSON.stringify(l)).sort(),
            labels.map((l) => JSON.stringify(l)).sort(),
          );
        }
      },
    ),
  );
});

const malformed: Array<[string, string]> = [
  ['empty', ''],
  ['no trailing ;', 'k8s:app=db'],
  ['no source', ':app=db;'],
  ['no =', 'k8s:app;'],
  ['empty key', 'k8s:=db;'],
  ['duplicate key', 'k8s:a=1;k8s:a=2;'],
  ['empty item', 'k8s:a=1;;'],
];
for (const [name, text] of malformed) {
  test(`decodeLabels rejects ${name} as malformed-value`, (t) => {
    const r = decodeLabels(text);
    t.false(r.ok);
    if (!r.ok) t.is(r.error.reason, 'malformed-value');
  });
}

test('encodeLabels refuses labels that cannot be written unambiguously', (t) => {
  for (const l of [
    { source: 'k8s', key: 'a;b', value: '' },
    { source: 'k:8s', key: 'a', value: '' },
    { source: 'k8s', key: 'a=b', value: '' },
    { source: 'k8s', key: 'a', value: 'x;y' },
  ]) {
    t.throws(() => encodeLabels([l]), { instanceOf: LabelFormatError });
  }
  t.throws(
    () =>
      encodeLabels([
        { source: 'k8s', key: 'a', value: '1' },
        { source: 'k8s', key: 'a', value: '2' },
      ]),
    {
      instanceOf: LabelFormatError,
    },
  );
});
