// Upstream truth tables, part 2: the rest of the TCP context, then the UDP and SCTP contexts.
import { SCTP, UDP } from './upstream-index.ts';
import type { ConformanceCase, Expectation } from './model.ts';
import { all, allow, deny, np, nsIs, podA, tc, tcp, yPodA80, NS } from './upstream-helpers.ts';

export const UPSTREAM_CASES_2: ConformanceCase[] = [
  tc(
    'should allow ingress access from updated pod',
    ['x/a', 'x/b'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-pod-selector', podA, {
            ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b', pod2: 'updated' } } }] }],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a')])],
      },
      {
        podLabels: [{ pod: 'x/b', labels: { pod: 'b', pod2: 'updated' } }],
        probes: [tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a')])],
      },
    ],
  ),
  tc(
    'should deny ingress from pods on other namespaces',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('deny-empty-policy', all, {
            ingress: [{ from: [{ podSelector: { matchLabels: {} } }] }],
          }),
        ],
        probes: [tcp(80, [deny('y/*', 'x/*'), deny('z/*', 'x/*')])],
      },
    ],
  ),
  tc(
    'should deny ingress access to updated pod',
    ['x/a', 'y/a'],
    [80],
    [
      {
        apply: [
          np(
            'deny-ingress-via-label-selector',
            { matchLabels: { target: 'isolated' } },
            { ingress: [] },
          ),
        ],
        probes: [tcp(80, [])],
      },
      {
        podLabels: [{ pod: 'x/a', labels: { pod: 'a', target: 'isolated' } }],
        probes: [tcp(80, [deny('*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should deny egress from pods based on PodSelector',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      {
        apply: [np('deny-egress-pod-a', podA, { egress: [] })],
        probes: [tcp(80, [deny('x/a', '*')])],
      },
    ],
  ),
  tc(
    'should deny egress from all pods in a namespace',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      {
        apply: [np('deny-egress-ns-x', all, { egress: [] })],
        probes: [tcp(80, [deny('x/*', '*')])],
      },
    ],
  ),
  tc(
    'should work with Ingress, Egress specified together',
    ['x/a', 'x/b', 'x/c', 'y/a'],
    [80, 81],
    [
      {
        apply: [
          np('allow-client-a-via-pod-selector', podA, {
            ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
            egress: [{ ports: [{ port: 80 }] }],
            policyTypes: ['Egress', 'Ingress'],
          }),
        ],
        probes: [
          tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a')]),
          tcp(81, [deny('*', 'x/a'), deny('x/a', '*'), allow('x/b', 'x/a')]),
        ],
      },
    ],
  ),
  tc(
    'should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)',
    ['x/a', 'y/a', 'y/b'],
    [80],
    [
      {
        apply: [
          np('allow-to-ns-y-pod-a', podA, {
            egress: [{ to: [{ namespaceSelector: nsIs('y'), podSelector: podA }] }],
          }),
          np(
            'allow-from-xa-on-ya-match-selector',
            podA,
            { ingress: [{ from: [{ namespaceSelector: nsIs('x'), podSelector: podA }] }] },
            'y',
          ),
          np(
            'allow-from-xa-on-yb-match-selector',
            { matchLabels: { pod: 'b' } },
            { ingress: [{ from: [{ namespaceSelector: nsIs('x'), podSelector: podA }] }] },
            'y',
          ),
        ],
        probes: [
          tcp(80, [deny('x/a', '*'), deny('*', 'y/a'), allow('x/a', 'y/a'), deny('*', 'y/b')]),
        ],
      },
    ],
  ),
  tc(
    'should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector',
    ['x/a', 'y/a', 'y/b'],
    [80],
    [
      {
        apply: [
          np('allow-to-ns-y-pod-a', podA, {
            egress: [{ to: [{ namespaceSelector: nsIs('y'), podSelector: podA }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/a', '*'), allow('x/a', 'y/a')])],
      },
    ],
  ),
  tc(
    'should enforce ingress policy allowing any port traffic to a server on a specific protocol',
    ['x/a', 'y/a'],
    [80],
    [
      {
        apply: [
          np('allow-ingress-by-proto', podA, { ingress: [{ ports: [{ protocol: 'TCP' }] }] }),
        ],
        probes: [tcp(80, []), { port: 80, protocol: 'UDP', expect: [deny('*', 'x/a')] }],
      },
    ],
    ['TCP', 'UDP'],
  ),
  tc(
    'should enforce multiple ingress policies with ingress allow-all policy taking precedence',
    ['x/a', 'y/a'],
    [81],
    [
      {
        apply: [np('allow-ingress-port-80', {}, { ingress: [{ ports: [{ port: 80 }] }] })],
        probes: [tcp(81, [deny('*', 'x/*')])],
      },
      { apply: [np('allow-ingress', {}, { ingress: [{}] })], probes: [tcp(81, [])] },
    ],
  ),
  tc(
    'should enforce multiple egress policies with egress allow-all policy taking precedence',
    ['x/a', 'y/a'],
    [81],
    [
      {
        apply: [np('allow-egress-port-80', {}, { egress: [{ ports: [{ port: 80 }] }] })],
        probes: [tcp(81, [deny('x/*', '*')])],
      },
      { apply: [np('allow-egress', {}, { egress: [{}] })], probes: [tcp(81, [])] },
    ],
  ),
  tc(
    'should stop enforcing policies after they are deleted',
    ['x/a', 'y/a'],
    [80],
    [
      {
        apply: [np('deny-all', all, { ingress: [], egress: [] })],
        probes: [tcp(80, [deny('x/*', '*'), deny('*', 'x/*')])],
      },
      { delete: ['NetworkPolicy/x/deny-all'], probes: [tcp(80, [])] },
    ],
  ),
  tc(
    'should allow egress access to server in CIDR block',
    ['x/a', 'y/a', 'y/b'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-cidr-egress-rule', podA, {
            egress: [{ to: [{ ipBlock: { cidr: '{{ip:y/b}}/32' } }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/a', '*'), allow('x/a', 'y/b')])],
      },
    ],
  ),
  tc(
    'should enforce except clause while egress access to server in CIDR block',
    ['x/a', 'x/b', 'x/c'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-cidr-egress-rule', podA, {
            egress: [{ to: [{ ipBlock: { cidr: '{{cidr4:x/b}}', except: ['{{ip:x/b}}/32'] } }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/a', 'x/b')])],
      },
    ],
  ),
  tc(
    'should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed',
    ['x/a', 'x/b', 'x/c'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-cidr-egress-rule', podA, {
            egress: [{ to: [{ ipBlock: { cidr: '{{cidr4:x/b}}', except: ['{{ip:x/b}}/32'] } }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/a', 'x/b')])],
      },
      {
        apply: [
          np('allow-client-a-via-cidr-egress-rule', podA, {
            egress: [{ to: [{ ipBlock: { cidr: '{{ip:x/b}}/32' } }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/a', '*'), allow('x/a', 'x/b')])],
      },
    ],
  ),
  tc(
    'should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      { apply: [np('allow-egress-for-target', podA, { egress: [{}] })], probes: [tcp(80, [])] },
      {
        apply: [np('deny-ingress-via-label-selector', podA, { ingress: [] })],
        probes: [tcp(80, [deny('*', 'x/a')])],
      },
    ],
  ),
  tc(
    "should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP",
    ['x/a', 'y/a'],
    [81],
    [
      {
        apply: [
          np('deny-ingress', all, { ingress: [] }),
          np('allow-only-sctp-ingress-on-port-81', podA, {
            ingress: [{ ports: [{ port: 81, protocol: 'SCTP' }] }],
          }),
        ],
        probes: [tcp(81, [deny('*', 'x/*')])],
      },
    ],
  ),
  tc(
    "should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP",
    ['x/a', 'y/a'],
    [81],
    [
      {
        apply: [
          np('allow-only-sctp-ingress-on-port-80', podA, {
            ingress: [{ ports: [{ port: 80, protocol: 'SCTP' }] }],
          }),
        ],
        probes: [tcp(81, [deny('*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should not allow access by TCP when a policy specifies only UDP',
    ['x/a', 'y/a'],
    [81],
    [
      {
        apply: [
          np('allow-only-udp-ingress-on-port-81', podA, {
            ingress: [{ ports: [{ port: 81, protocol: 'UDP' }] }],
          }),
        ],
        probes: [tcp(81, [deny('*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector-for-immutable-ns-label', podA, {
            ingress: [{ from: [{ namespaceSelector: nsIs('y') }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), deny('z/*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on NamespaceSelector with MatchExpressions using default ns label',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('allow-ns-y-match-selector-for-immutable-ns-label', podA, {
            egress: [
              {
                to: [
                  {
                    namespaceSelector: {
                      matchExpressions: [{ key: NS, operator: 'NotIn', values: ['y'] }],
                    },
                  },
                ],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/a', 'y/*')])],
      },
    ],
  ),
  ...(['UDP', 'SCTP'] as const).flatMap((proto): ConformanceCase[] => {
    const ctx = proto === 'UDP' ? UDP : SCTP;
    const probe = (port: number, expect: Expectation[]) => ({ port, protocol: proto, expect });
    return [
      {
        name: `${ctx} should support a 'default-deny-ingress' policy`,
        pods: ['x/a', 'x/b', 'y/a', 'y/b'],
        ports: [80],
        protocols: [proto],
        steps: [
          {
            apply: [np('deny-all', all, { ingress: [] })],
            probes: [probe(80, [deny('*', 'x/*')])],
          },
        ],
      },
      {
        name: `${ctx} should enforce policy based on Ports`,
        pods: ['x/a', 'x/b', 'y/a', 'z/a'],
        ports: [81],
        protocols: [proto],
        steps: [
          {
            apply: [
              np('allow-ingress-on-port-81-ns-x', podA, {
                ingress: [
                  {
                    from: [{ namespaceSelector: nsIs('y') }],
                    ports: [{ port: 81, protocol: proto }],
                  },
                ],
              }),
            ],
            probes: [probe(81, [deny('x/*', 'x/a'), deny('z/*', 'x/a')])],
          },
        ],
      },
      {
        name: `${ctx} should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector`,
        pods: ['x/a', 'x/b', 'y/a'],
        ports: [80],
        protocols: [proto],
        steps: [
          {
            apply: [
              np('allow-ns-y-pod-a-via-namespace-pod-selector', podA, { ingress: [yPodA80] }),
            ],
            probes: [probe(80, [deny('*', 'x/a'), allow('y/a', 'x/a')])],
          },
        ],
      },
    ];
  }),
];
