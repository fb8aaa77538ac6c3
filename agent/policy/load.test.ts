import test from 'ava';
import { PolicyError } from './errors.ts';
import { loadMesh } from './load.ts';
import { explain } from './reachability.ts';

const pod = (ns: string, name: string, ip: string) =>
  `kind: Pod\nmetadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}\nstatus: {podIP: ${ip}}\n`;

test('cluster IDs: from a Cluster document, else the lowest free ID in order of appearance', (t) => {
  const mesh = loadMesh([
    { cluster: 'east', file: 'east.yaml', text: pod('x', 'a', '10.1.0.1') },
    {
      cluster: 'west',
      file: 'west.yaml',
      text: `kind: Cluster\nmetadata: {name: west}\nspec: {id: 1}\n---\n${pod('x', 'b', '10.2.0.1')}`,
    },
    { cluster: 'north', file: 'north.yaml', text: pod('x', 'c', '10.3.0.1') },
  ]);
  t.is(mesh.clusterId('west'), 1);
  t.is(mesh.clusterId('east'), 2);
  t.is(mesh.clusterId('north'), 3);
  t.is(mesh.pod('east/x/a')!.identity >>> 16, 2);
});

test('a Cluster document for another cluster or with a bad ID is refused', (t) => {
  const wrong = t.throws(
    () =>
      loadMesh([
        {
          cluster: 'c1',
          file: 'a.yaml',
          text: 'kind: Cluster\nmetadata: {name: c2}\nspec: {id: 2}\n',
        },
      ]),
    { instanceOf: PolicyError },
  );
  t.regex(
    wrong?.message ?? '',
    /a\.yaml, document 1: Cluster object names c2 but the file was given for cluster c1/,
  );
  const bad = t.throws(
    () =>
      loadMesh([
        {
          cluster: 'c1',
          file: 'a.yaml',
          text: 'kind: Cluster\nmetadata: {name: c1}\nspec: {id: 300}\n',
        },
      ]),
    { instanceOf: PolicyError },
  );
  t.regex(bad?.message ?? '', /spec\.id must be an integer from 1 to 255/);
});

test('IPv6 pods and CIDR rules, explained with identity labels', (t) => {
  const policy =
    'kind: CiliumNetworkPolicy\nmetadata: {name: v6, namespace: x}\nspec:\n  endpointSelector: {matchLabels: {app: a}}\n  ingress: [{fromCIDRSet: [{cidr: "fd00::/64", except: ["fd00::2/128"]}]}]\n';
  const mesh = loadMesh([
    {
      cluster: 'c1',
      file: 'v6.yaml',
      text: [
        pod('x', 'a', 'fd00::1'),
        pod('x', 'b', 'fd00::3'),
        pod('x', 'c', 'fd00::2'),
        policy,
      ].join('---\n'),
    },
  ]);
  const ok = explain(mesh, 'c1/x/b', 'c1/x/a', { port: 80, protocol: 'TCP' });
  t.true(ok.allowed);
  t.is(ok.ingress.prefix, 'fd00::/64');
  t.is(ok.ingress.matches[0]?.peerDescription, 'addresses in fd00::/64');
  const denied = explain(mesh, 'c1/x/c', 'c1/x/a', { port: 80, protocol: 'TCP' });
  t.false(denied.allowed);
  t.is(denied.ingress.prefix, 'fd00::2/128');
});
