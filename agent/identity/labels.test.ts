import test from 'ava';
import { decodeLabels, encodeLabels } from '../../clustermesh/kvstore/labels.ts';
import { labelList, labelsFromString, labelsToString, podSecurityLabels } from './labels.ts';

test('labelsToString is exactly the kvstore encoding: sorted by key, reserved source kept', (t) => {
  const labels = new Map([
    ['app.kubernetes.io/name', 'db'],
    ['app', 'web'],
    ['reserved:host', ''],
  ]);
  // by key: "app" < "app.kubernetes.io/name" < "host" (a plain string sort would put "app." first)
  t.is(labelsToString(labels), 'k8s:app=web;k8s:app.kubernetes.io/name=db;reserved:host=;');
  t.is(labelsToString(labels), encodeLabels(labelList(labels)));
});

test('pod labels round-trip through the kvstore decoder and labelsFromString', (t) => {
  const labels = podSecurityLabels({
    cluster: 'c2',
    namespace: 'prod',
    podLabels: { app: 'db', 'app.kubernetes.io/part-of': 'shop' },
    namespaceLabels: { team: 'a' },
  });
  const text = labelsToString(labels);
  const decoded = decodeLabels(text);
  t.true(decoded.ok);
  if (decoded.ok) t.is(encodeLabels(decoded.value), text);
  t.deepEqual(labelsFromString(text), new Map([...labels].sort()));
  t.is(labelsToString(labelsFromString(text)), text);
});
