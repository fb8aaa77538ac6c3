import test from 'ava';
import { Protocol } from './entry.ts';
import { PolicyMesh, type PodSpec } from './mesh.ts';
import { parseNetworkPolicy } from './parse-k8s.ts';
import { entryKey } from './resolve.ts';

const pod = (cluster: string, namespace: string, name: string): PodSpec => ({
  cluster,
  namespace,
  name,
  labels: { pod: name },
  ip: undefined,
  namedPorts: [{ name: 'http', port: 80, protocol: Protocol.TCP }],
});

function fromNsLabel(): ReturnType<typeof parseNetworkPolicy> {
  return parseNetworkPolicy(
    {
      kind: 'NetworkPolicy',
      metadata: { name: 'n', namespace: 'x' },
      spec: {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'blue' } } }] }],
      },
    },
    'c1',
  );
}

test('namespace label changes re-identify its pods and update the entries that select them', (t) => {
  const mesh = new PolicyMesh();
  mesh.addCluster('c1', 1);
  mesh.addCluster('c2', 2);
  for (const p of [pod('c1', 'x', 'a'), pod('c1', 'y', 'b'), pod('c2', 'y', 'c')])
    mesh.upsertPod(p);
  const np = fromNsLabel();
  if (!np.ok) throw np.error;
  mesh.upsertPolicy('c1', np.value);
  const e = mesh.engine('c1');
  t.deepEqual(e.policyOf('c1/x/a').entries, []);
  const deltas = mesh.upsertNamespace('c1', 'y', { team: 'blue' });
  const forA = deltas.filter((d) => d.cluster === 'c1' && d.delta.endpoint === 'c1/x/a');
  const b = mesh.pod('c1/y/b')!;
  t.true(forA.some((d) => d.delta.add.some((x) => x.peer === b.identity)));
  t.deepEqual(
    e.policyOf('c1/x/a').entries.map(entryKey).sort(),
    e.fullRecompute('c1/x/a').entries.map(entryKey).sort(),
  );
  // the remote cluster's namespace y is not the local one: c2/y/c stays out
  t.false(e.policyOf('c1/x/a').entries.some((x) => x.peer === mesh.pod('c2/y/c')!.identity));
  const gone = mesh.deletePod('c1', 'y', 'b');
  t.true(
    gone.some(
      (d) => d.delta.endpoint === 'c1/x/a' && d.delta.remove.some((x) => x.peer === b.identity),
    ),
  );
});

test('cluster IDs must be unique in the mesh', (t) => {
  const mesh = new PolicyMesh();
  mesh.addCluster('c1', 1);
  t.throws(() => mesh.addCluster('c2', 1), { message: /both have ID 1/ });
});
