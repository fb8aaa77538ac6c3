// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy cases of our own, two clusters (c1, c2),
// in the same format as the upstream tables so the lab can replay them with real packets.
// Policies go to cluster c1 unless an object carries `cluster`.
import type { ConformanceCase, Expectation, ProbeCheck } from './model.ts';

type Obj = Record<string, unknown>;
const CL = 'io.cilium.k8s.policy.cluster';

function cnp(name: string, spec: Obj, ns = 'x', cluster = 'c1'): Obj {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace: ns },
    spec,
    cluster,
  };
}
function ccnp(name: string, spec: Obj, cluster = 'c1'): Obj {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name },
    spec,
    cluster,
  };
}

const deny = (from: string, to: string): Expectation => [from, to, false];
const allow = (from: string, to: string): Expectation => [from, to, true];
const tcp = (port: number, expect: Expectation[]): ProbeCheck => ({
  port,
  protocol: 'TCP',
  expect,
});
const udp = (port: number, expect: Expectation[]): ProbeCheck => ({
  port,
  protocol: 'UDP',
  expect,
});
const podA = { matchLabels: { pod: 'a' } };
const MESH = ['x/a', 'x/b', 'y/b', 'c2/x/a', 'c2/x/b', 'c2/y/b'];

function cc(
  name: string,
  apply: Obj[],
  probes: ProbeCheck[],
  pods = MESH,
  ports = [80],
  protocols: ConformanceCase['protocols'] = ['TCP'],
): ConformanceCase {
  return { name: `cilium: ${name}`, pods, ports, protocols, steps: [{ apply, probes }] };
}

export const CILIUM_CASES: ConformanceCase[] = [
  cc(
    'a selector without the cluster label selects the local cluster only',
    [
      cnp('from-b', {
        endpointSelector: podA,
        ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }],
      }),
    ],
    [tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a')])],
  ),
  cc(
    'cross-cluster matchLabels on the cluster label',
    [
      cnp('from-c2-b', {
        endpointSelector: podA,
        ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'b', [`k8s:${CL}`]: 'c2' } }] }],
      }),
    ],
    [
      // the policy's namespace (x) is added: c2/x/b is allowed, c2/y/b is not
      tcp(80, [deny('*', 'x/a'), allow('c2/x/b', 'x/a')]),
    ],
  ),
  cc(
    'cross-cluster matchExpressions In and Exists on the cluster label',
    [
      cnp('in-both', {
        endpointSelector: podA,
        ingress: [
          {
            fromEndpoints: [
              {
                matchLabels: { pod: 'b' },
                matchExpressions: [{ key: CL, operator: 'In', values: ['c1', 'c2'] }],
              },
            ],
          },
        ],
      }),
      cnp('any-cluster-y', {
        endpointSelector: { matchLabels: { pod: 'b' } },
        ingress: [
          {
            fromEndpoints: [
              {
                matchLabels: { 'io.kubernetes.pod.namespace': 'y' },
                matchExpressions: [{ key: CL, operator: 'Exists' }],
              },
            ],
          },
        ],
      }),
    ],
    [
      tcp(80, [
        deny('*', 'x/a'),
        allow('x/b', 'x/a'),
        allow('c2/x/b', 'x/a'),
        deny('*', 'x/b'),
        allow('y/b', 'x/b'),
        allow('c2/y/b', 'x/b'),
      ]),
    ],
  ),
  cc(
    'namespace scoping: an empty endpoint selector in a namespaced policy selects its namespace',
    [cnp('same-ns', { endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] })],
    [
      // every x pod of c1 is isolated; only x pods of c1 reach them
      tcp(80, [deny('*', 'x/*'), allow('x/*', 'x/*')]),
    ],
  ),
  cc(
    'clusterwide policy: subjects and peers in every namespace of the local cluster',
    [
      ccnp('b-to-every-b', {
        endpointSelector: { matchLabels: { pod: 'b' } },
        ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }],
      }),
    ],
    [tcp(80, [deny('*', 'x/b'), deny('*', 'y/b'), allow('y/b', 'x/b'), allow('x/b', 'y/b')])],
  ),
  cc(
    'entities: cluster admits the local cluster only, all admits everything',
    [
      cnp('cluster', { endpointSelector: podA, ingress: [{ fromEntities: ['cluster'] }] }),
      cnp('all', {
        endpointSelector: { matchLabels: { pod: 'b' } },
        ingress: [{ fromEntities: ['all'] }],
      }),
    ],
    [tcp(80, [deny('c2/*/*', 'x/a')])],
  ),
  cc(
    'entities: world does not admit pods',
    [cnp('world', { endpointSelector: podA, ingress: [{ fromEntities: ['world'] }] })],
    [tcp(80, [deny('*', 'x/a')])],
  ),
  cc(
    'CIDR with except matches pod addresses, except carves a hole',
    [
      // the /16 of c2's pods, with c2/y/b carved out
      cnp('to-c2-but-y', {
        endpointSelector: podA,
        egress: [{ toCIDRSet: [{ cidr: '{{cidr16:c2/x/a}}', except: ['{{ip:c2/y/b}}/32'] }] }],
      }),
    ],
    [tcp(80, [deny('x/a', '*'), allow('x/a', 'c2/x/*')])],
  ),
  cc(
    'toCIDR and fromCIDR with a single pod address',
    [cnp('from-c2-xb', { endpointSelector: podA, ingress: [{ fromCIDR: ['{{ip:c2/x/b}}/32'] }] })],
    [tcp(80, [deny('*', 'x/a'), allow('c2/x/b', 'x/a')])],
  ),
  cc(
    'deny beats allow, across identity and wildcard entries',
    [
      cnp('allow-all', { endpointSelector: podA, ingress: [{ fromEntities: ['all'] }] }),
      cnp('deny-b', {
        endpointSelector: podA,
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }],
      }),
    ],
    [tcp(80, [deny('x/b', 'x/a')])],
  ),
  cc(
    'deny on one port leaves the other ports allowed',
    [
      cnp('allow-y', {
        endpointSelector: podA,
        ingress: [{ fromEndpoints: [{ matchLabels: { 'io.kubernetes.pod.namespace': 'y' } }] }],
      }),
      cnp('deny-81', {
        endpointSelector: podA,
        ingressDeny: [{ toPorts: [{ ports: [{ port: '81', protocol: 'TCP' }] }] }],
      }),
    ],
    [
      tcp(80, [deny('*', 'x/a'), allow('y/b', 'x/a')]),
      tcp(81, [deny('*', 'x/a')]),
      udp(81, [deny('*', 'x/a'), allow('y/b', 'x/a')]),
    ],
    MESH,
    [80, 81],
    ['TCP', 'UDP'],
  ),
  cc(
    'deny by CIDR beats allow by identity',
    [
      cnp('allow-b', {
        endpointSelector: podA,
        ingress: [
          {
            fromEndpoints: [
              {
                matchLabels: { pod: 'b' },
                matchExpressions: [{ key: 'io.kubernetes.pod.namespace', operator: 'Exists' }],
              },
            ],
          },
        ],
      }),
      cnp('deny-cidr', {
        endpointSelector: podA,
        ingressDeny: [{ fromCIDRSet: [{ cidr: '{{cidr16:x/b}}', except: ['{{ip:y/b}}/32'] }] }],
      }),
    ],
    [tcp(80, [deny('*', 'x/a'), allow('y/b', 'x/a')])],
  ),
  cc(
    'port ranges with endPort',
    [
      cnp('range', {
        endpointSelector: podA,
        ingress: [{ toPorts: [{ ports: [{ port: '81', endPort: 90, protocol: 'TCP' }] }] }],
      }),
    ],
    [tcp(80, [deny('*', 'x/a')]), tcp(81, []), udp(81, [deny('*', 'x/a')])],
    MESH,
    [80, 81],
    ['TCP', 'UDP'],
  ),
  cc(
    'protocol ANY covers TCP and UDP on the port',
    [
      cnp('any-81', {
        endpointSelector: podA,
        ingress: [{ toPorts: [{ ports: [{ port: '81' }] }] }],
      }),
    ],
    [tcp(81, []), udp(81, []), tcp(80, [deny('*', 'x/a')])],
    MESH,
    [80, 81],
    ['TCP', 'UDP'],
  ),
  cc(
    'egress named port resolves against the destination pod',
    [
      cnp('egress-named', {
        endpointSelector: podA,
        egress: [
          {
            toEndpoints: [{ matchLabels: { [CL]: 'c2' } }],
            toPorts: [{ ports: [{ port: 'serve-81-tcp' }] }],
          },
        ],
      }),
    ],
    [tcp(81, [deny('x/a', '*'), allow('x/a', 'c2/x/*')]), tcp(80, [deny('x/a', '*')])],
    MESH,
    [80, 81],
  ),
  cc(
    'egress deny to another cluster',
    [
      cnp('no-c2', {
        endpointSelector: {},
        egressDeny: [
          {
            toEndpoints: [
              {
                matchExpressions: [
                  { key: CL, operator: 'In', values: ['c2'] },
                  { key: 'io.kubernetes.pod.namespace', operator: 'Exists' },
                ],
              },
            ],
          },
        ],
        egress: [{ toEntities: ['all'] }],
      }),
    ],
    [tcp(80, [deny('x/*', 'c2/*/*')])],
  ),
  cc(
    'policies in the remote cluster govern its own pods',
    [
      cnp(
        'c2-a-from-c1-a',
        {
          endpointSelector: podA,
          ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'a', [CL]: 'c1' } }] }],
        },
        'x',
        'c2',
      ),
    ],
    [tcp(80, [deny('*', 'c2/x/a'), allow('x/a', 'c2/x/a')])],
  ),
  cc(
    'a Kubernetes NetworkPolicy never admits other clusters',
    [
      {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'all-ns', namespace: 'x' },
        spec: { podSelector: podA, ingress: [{ from: [{ namespaceSelector: {} }] }] },
      },
    ],
    [tcp(80, [deny('c2/*/*', 'x/a')])],
  ),
  cc(
    'enableDefaultDeny false adds allows without isolating',
    [
      cnp('no-isolation', {
        endpointSelector: podA,
        enableDefaultDeny: { ingress: false },
        ingress: [{ fromEndpoints: [{ matchLabels: { pod: 'b' } }] }],
      }),
      cnp('deny-only', {
        endpointSelector: { matchLabels: { pod: 'b' } },
        ingressDeny: [
          {
            fromEndpoints: [
              { matchLabels: { pod: 'a' }, matchExpressions: [{ key: CL, operator: 'Exists' }] },
            ],
          },
        ],
      }),
    ],
    [
      // a deny-only policy still isolates (Cilium: default deny for a direction with rules)
      tcp(80, [deny('*', 'x/b'), allow('*', 'x/a')]),
    ],
  ),
  cc(
    'an empty ingress rule isolates without admitting anyone',
    [cnp('isolate', { endpointSelector: podA, ingress: [{}] })],
    [tcp(80, [deny('*', 'x/a')])],
  ),
];
