import test from 'ava';
import { PolicyError } from './errors.ts';
import { loadMesh } from './load.ts';
import { parseCiliumPolicy } from './parse-cilium.ts';
import { parseNetworkPolicy } from './parse-k8s.ts';

type Obj = Record<string, unknown>;
const np = (spec: Obj, name = 'bad'): Obj => ({
  kind: 'NetworkPolicy',
  metadata: { name, namespace: 'x' },
  spec,
});
const cnp = (spec: Obj): Obj => ({
  kind: 'CiliumNetworkPolicy',
  metadata: { name: 'bad', namespace: 'x' },
  spec,
});
const sel = { matchLabels: { pod: 'a' } };

// [what is wrong, object, expected field path, expected error type]
const INVALID: [string, Obj, string, string][] = [
  ['missing name', np({ podSelector: {} }, ''), 'metadata.name', 'Required value'],
  [
    'unknown policy type',
    np({ podSelector: {}, policyTypes: ['Ingress', 'Sideways'] }),
    'spec.policyTypes[1]',
    'Unsupported value',
  ],
  [
    'duplicate policy type',
    np({ podSelector: {}, policyTypes: ['Egress', 'Egress'] }),
    'spec.policyTypes[1]',
    'Duplicate value',
  ],
  [
    'port out of range',
    np({ podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] }),
    'spec.ingress[0].ports[0].port',
    'Invalid value',
  ],
  [
    'port zero',
    np({ podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }),
    'spec.ingress[0].ports[0].port',
    'Invalid value',
  ],
  [
    'bad protocol',
    np({ podSelector: {}, egress: [{ ports: [{ port: 80, protocol: 'ICMP' }] }] }),
    'spec.egress[0].ports[0].protocol',
    'Unsupported value',
  ],
  [
    'endPort below port',
    np({ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }),
    'spec.ingress[0].ports[0].endPort',
    'Invalid value',
  ],
  [
    'endPort with a named port',
    np({ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }),
    'spec.ingress[0].ports[0].endPort',
    'Invalid value',
  ],
  [
    'endPort without port',
    np({ podSelector: {}, ingress: [{ ports: [{ endPort: 90 }] }] }),
    'spec.ingress[0].ports[0].endPort',
    'Required value',
  ],
  [
    'invalid port name',
    np({ podSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }),
    'spec.ingress[0].ports[0].port',
    'Invalid value',
  ],
  [
    'empty peer',
    np({ podSelector: {}, ingress: [{ from: [{}] }] }),
    'spec.ingress[0].from[0]',
    'Required value',
  ],
  [
    'ipBlock with a selector',
    np({
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }],
    }),
    'spec.ingress[0].from[0]',
    'Forbidden',
  ],
  [
    'bad cidr',
    np({ podSelector: {}, egress: [{ to: [{ ipBlock: { cidr: '10.0.0.300/8' } }] }] }),
    'spec.egress[0].to[0].ipBlock.cidr',
    'Invalid value',
  ],
  [
    'except outside cidr',
    np({
      podSelector: {},
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }],
    }),
    'spec.egress[0].to[0].ipBlock.except[0]',
    'Invalid value',
  ],
  [
    'except equal to cidr',
    np({
      podSelector: {},
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }],
    }),
    'spec.egress[0].to[0].ipBlock.except[0]',
    'Invalid value',
  ],
  [
    'bad selector operator',
    np({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Near', values: ['b'] }] } }),
    'spec.podSelector.matchExpressions[0].operator',
    'Invalid value',
  ],
  [
    'In without values',
    np({
      podSelector: {},
      ingress: [
        { from: [{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }] },
      ],
    }),
    'spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values',
    'Required value',
  ],
  [
    'Exists with values',
    np({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }),
    'spec.podSelector.matchExpressions[0].values',
    'Forbidden',
  ],
  [
    'bad label value',
    np({ podSelector: { matchLabels: { app: 'no spaces allowed' } } }),
    'spec.podSelector.matchLabels',
    'Invalid value',
  ],
  ['missing spec', { kind: 'NetworkPolicy', metadata: { name: 'bad' } }, 'spec', 'Required value'],
  [
    'cnp without endpointSelector',
    cnp({ ingress: [{ fromEntities: ['world'] }] }),
    'spec.endpointSelector',
    'Required value',
  ],
  [
    'cnp unknown entity',
    cnp({ endpointSelector: sel, ingress: [{ fromEntities: ['universe'] }] }),
    'spec.ingress[0].fromEntities[0]',
    'Unsupported value',
  ],
  [
    'cnp bad CIDR',
    cnp({ endpointSelector: sel, egress: [{ toCIDR: ['10.1.2.3/40'] }] }),
    'spec.egress[0].toCIDR[0].cidr',
    'Invalid value',
  ],
  [
    'cnp except outside',
    cnp({
      endpointSelector: sel,
      egressDeny: [{ toCIDRSet: [{ cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] }] }],
    }),
    'spec.egressDeny[0].toCIDRSet[0].except[0]',
    'Invalid value',
  ],
  [
    'cnp bad protocol',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'GRE' }] }] }],
    }),
    'spec.ingress[0].toPorts[0].ports[0].protocol',
    'Unsupported value',
  ],
  [
    'cnp endPort below port',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80', endPort: 79 }] }] }],
    }),
    'spec.ingress[0].toPorts[0].ports[0].endPort',
    'Invalid value',
  ],
  [
    'cnp toPorts without ports',
    cnp({ endpointSelector: sel, ingress: [{ toPorts: [{}] }] }),
    'spec.ingress[0].toPorts[0].ports',
    'Required value',
  ],
  [
    'cnp toFQDNs is refused, not ignored',
    cnp({
      endpointSelector: sel,
      egress: [
        { toFQDNs: [{ matchName: 'example.com' }], toPorts: [{ ports: [{ port: '443' }] }] },
      ],
    }),
    'spec.egress[0].toFQDNs',
    'Forbidden',
  ],
  [
    'cnp L7 rules are refused',
    cnp({
      endpointSelector: sel,
      ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: { http: [{ method: 'GET' }] } }] }],
    }),
    'spec.ingress[0].toPorts[0].rules',
    'Forbidden',
  ],
  [
    'cnp nodeSelector is refused',
    cnp({ nodeSelector: {}, endpointSelector: sel }),
    'spec.nodeSelector',
    'Forbidden',
  ],
  [
    'cnp enableDefaultDeny not boolean',
    cnp({ endpointSelector: sel, ingress: [{}], enableDefaultDeny: { ingress: 'no' } }),
    'spec.enableDefaultDeny.ingress',
    'Invalid value',
  ],
  [
    'cnp no spec at all',
    { kind: 'CiliumNetworkPolicy', metadata: { name: 'bad', namespace: 'x' } },
    'spec',
    'Required value',
  ],
];

for (const [what, obj, field, type] of INVALID) {
  test(`invalid policy is rejected whole: ${what}`, (t) => {
    const res =
      obj.kind === 'NetworkPolicy'
        ? parseNetworkPolicy(obj, 'c1')
        : parseCiliumPolicy(obj, obj.kind as 'CiliumNetworkPolicy', 'c1');
    if (res.ok) return t.fail(`accepted: ${JSON.stringify(obj)}`);
    t.is(res.error.code, 'POLICY_INVALID');
    const cause = res.error.causes.find((c) => c.field === field);
    t.truthy(cause, `no error at ${field}; got ${res.error.message}`);
    t.is(cause?.type as string | undefined, type);
    t.true(res.error.message.includes(`${field}: ${type}`));
    t.regex(
      res.error.message,
      /^(NetworkPolicy\.networking\.k8s\.io|CiliumNetworkPolicy\.cilium\.io) "[^"]*" is invalid: /,
    );
  });
}

test('several problems are all reported, kube-apiserver style', (t) => {
  const res = parseNetworkPolicy(
    np({ podSelector: {}, ingress: [{ ports: [{ port: 0 }, { port: 80, protocol: 'XTP' }] }] }),
    'c1',
  );
  t.false(res.ok);
  if (!res.ok) {
    t.deepEqual(
      res.error.causes.map((c) => c.field),
      ['spec.ingress[0].ports[0].port', 'spec.ingress[0].ports[1].protocol'],
    );
    t.is(
      res.error.message,
      'NetworkPolicy.networking.k8s.io "bad" is invalid: [spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive, spec.ingress[0].ports[1].protocol: Unsupported value: "XTP": supported values: "SCTP", "TCP", "UDP"]',
    );
  }
});

test('an invalid policy in a file stops the load with file and document number', (t) => {
  const text = [
    'kind: Pod\nmetadata: {name: a, namespace: x}',
    'kind: NetworkPolicy\nmetadata: {name: bad, namespace: x}\nspec: {podSelector: {}, ingress: [{ports: [{port: 0}]}]}',
  ].join('\n---\n');
  const err = t.throws(() => loadMesh([{ cluster: 'c1', file: 'c1.yaml', text }]), {
    instanceOf: PolicyError,
  });
  t.is(err?.code, 'POLICY_INVALID');
  t.regex(
    err?.message ?? '',
    /^c1\.yaml, document 2: NetworkPolicy\.networking\.k8s\.io "bad" is invalid: spec\.ingress\[0\]\.ports\[0\]\.port/,
  );
});

test('malformed YAML and unknown kinds name the file and document', (t) => {
  const bad = t.throws(
    () => loadMesh([{ cluster: 'c1', file: 'f.yaml', text: 'kind: Pod\n---\nkind: [unclosed\n' }]),
    { instanceOf: PolicyError },
  );
  t.regex(bad?.message ?? '', /^f\.yaml, document 2: malformed YAML/);
  const unknown = t.throws(
    () =>
      loadMesh([
        { cluster: 'c1', file: 'g.yaml', text: 'kind: Deployment\nmetadata: {name: d}\n' },
      ]),
    { instanceOf: PolicyError },
  );
  t.regex(unknown?.message ?? '', /^g\.yaml, document 1: unknown kind "Deployment"/);
});

test('valid policies of every shape parse', (t) => {
  const ok = parseNetworkPolicy(
    np({
      podSelector: sel,
      policyTypes: ['Ingress', 'Egress'],
      ingress: [
        {
          from: [
            { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
            { namespaceSelector: {}, podSelector: {} },
          ],
          ports: [{ port: 80, endPort: 90, protocol: 'SCTP' }, { port: 'http' }],
        },
      ],
      egress: [{}],
    }),
    'c1',
  );
  t.true(ok.ok);
  const c = parseCiliumPolicy(
    cnp({
      endpointSelector: sel,
      ingress: [
        {
          fromEntities: ['world', 'cluster'],
          toPorts: [{ ports: [{ port: '53', protocol: 'UDP' }] }],
        },
      ],
      egressDeny: [{ toCIDRSet: [{ cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] }] }],
    }),
    'CiliumNetworkPolicy',
    'c1',
  );
  t.true(c.ok);
});
