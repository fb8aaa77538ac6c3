import test from 'ava';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { RESOURCES } from './resources.ts';
import { ApiError } from './status.ts';

const podKeys = RESOURCES.find((r) => r.kind === 'Pod')!.mergeKeys;

const pod = () => ({
  metadata: { name: 'p', labels: { a: '1', b: '2' }, finalizers: ['x'] },
  spec: {
    containers: [
      {
        name: 'web',
        image: 'nginx',
        ports: [{ containerPort: 80, name: 'http' }],
        env: [{ name: 'A', value: '1' }],
      },
      { name: 'side', image: 'busybox' },
    ],
    tolerations: [{ key: 't1' }],
  },
});

test('JSON merge patch: objects merge, null deletes, arrays replace', (t) => {
  const out = mergePatch(pod(), {
    metadata: { labels: { a: null, c: '3' } },
    spec: { tolerations: [] },
  }) as ReturnType<typeof pod>;
  t.deepEqual(out.metadata.labels, { b: '2', c: '3' } as never);
  t.deepEqual(out.spec.tolerations, []);
  t.is(out.spec.containers.length, 2);
});

test('JSON patch: add, replace, remove, move, copy, test; failures are 422', (t) => {
  const out = jsonPatch({ a: { b: [1, 2] }, c: 1 }, [
    { op: 'add', path: '/a/b/-', value: 3 },
    { op: 'replace', path: '/c', value: 2 },
    { op: 'copy', from: '/c', path: '/d' },
    { op: 'move', from: '/d', path: '/e~1f' },
    { op: 'remove', path: '/a/b/0' },
    { op: 'test', path: '/c', value: 2 },
  ]);
  t.deepEqual(out, { a: { b: [2, 3] }, c: 2, 'e/f': 2 });
  const err = t.throws(() => jsonPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]));
  t.true(err instanceof ApiError && err.code === 422);
  t.throws(() => jsonPatch({ a: 1 }, [{ op: 'remove', path: '/nope' }]));
});

test('strategic merge patch merges containers by name and ports by containerPort', (t) => {
  const out = strategicMergePatch(
    pod(),
    {
      spec: {
        containers: [
          {
            name: 'web',
            ports: [
              { containerPort: 8080, name: 'alt' },
              { containerPort: 80, protocol: 'TCP' },
            ],
          },
          { name: 'new', image: 'x' },
        ],
      },
    },
    podKeys,
  ) as ReturnType<typeof pod>;
  t.deepEqual(
    out.spec.containers.map((c) => c.name),
    ['web', 'side', 'new'],
  );
  t.deepEqual(out.spec.containers[0]!.ports, [
    { containerPort: 80, name: 'http', protocol: 'TCP' },
    { containerPort: 8080, name: 'alt' },
  ] as never);
  t.is(out.spec.containers[0]!.image, 'nginx');
});

test('strategic merge patch directives: $patch delete/replace, $setElementOrder, $retainKeys, primitive merge', (t) => {
  const out = strategicMergePatch(
    pod(),
    {
      metadata: { finalizers: ['y'], labels: { $patch: 'replace', only: 'me' } },
      spec: {
        '$setElementOrder/containers': [{ name: 'side' }, { name: 'web' }],
        containers: [{ name: 'web', $patch: 'delete' }],
        tolerations: [{ key: 't2' }],
      },
    },
    podKeys,
  ) as ReturnType<typeof pod>;
  t.deepEqual(out.metadata.finalizers, ['x', 'y']);
  t.deepEqual(out.metadata.labels, { only: 'me' } as never);
  t.deepEqual(
    out.spec.containers.map((c) => c.name),
    ['side'],
  );
  t.deepEqual(out.spec.tolerations, [{ key: 't2' }], 'lists without a merge key are replaced');

  const ordered = strategicMergePatch(
    pod(),
    { spec: { '$setElementOrder/containers': [{ name: 'side' }, { name: 'web' }] } },
    podKeys,
  ) as ReturnType<typeof pod>;
  t.deepEqual(
    ordered.spec.containers.map((c) => c.name),
    ['side', 'web'],
  );
  const retained = strategicMergePatch(
    { spec: { a: 1, b: 2, c: 3 } },
    { spec: { $retainKeys: ['a', 'c'], c: 4 } },
    {},
  );
  t.deepEqual(retained, { spec: { a: 1, c: 4 } });
  const removed = strategicMergePatch(
    pod(),
    { metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] } },
    podKeys,
  ) as ReturnType<typeof pod>;
  t.deepEqual(removed.metadata.finalizers, []);
});
