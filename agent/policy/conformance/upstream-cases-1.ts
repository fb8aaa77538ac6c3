// Upstream truth tables, part 1: the TCP context up to 'should allow ingress access from updated namespace', in upstream order.
import type { ConformanceCase } from './model.ts';
import {
  all,
  allow,
  deny,
  notX,
  np,
  nsIs,
  podA,
  tc,
  tcp,
  yPodA80,
  NS,
} from './upstream-helpers.ts';

export const UPSTREAM_CASES_1: ConformanceCase[] = [
  tc(
    "should support a 'default-deny-ingress' policy",
    ['x/a', 'x/b', 'y/a', 'y/b'],
    [80],
    [{ apply: [np('deny-ingress', all, { ingress: [] })], probes: [tcp(80, [deny('*', 'x/*')])] }],
  ),
  tc(
    "should support a 'default-deny-all' policy",
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      {
        apply: [np('deny-all', all, { ingress: [], egress: [] })],
        probes: [tcp(80, [deny('*', 'x/*'), deny('x/*', '*')])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow traffic from pods within server namespace based on PodSelector',
    ['x/a', 'x/b', 'x/c', 'y/a'],
    [80],
    [
      {
        apply: [
          np('x-a-allows-x-b', podA, {
            ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow ingress traffic for a target',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      {
        apply: [
          np('deny-all', all, { ingress: [] }),
          np('allow-all-to-a', podA, {
            ingress: [{ from: [{ podSelector: {}, namespaceSelector: {} }] }],
          }),
        ],
        probes: [tcp(80, [allow('*', 'x/a'), deny('*', 'x/b')])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow ingress traffic from pods in all namespaces',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('allow-from-another-ns', podA, {
            ingress: [{ from: [{ namespaceSelector: { matchLabels: {} } }] }],
          }),
        ],
        probes: [tcp(80, [])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector', podA, {
            ingress: [{ from: [{ namespaceSelector: nsIs('y') }] }],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), deny('z/*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on PodSelector with MatchExpressions',
    ['x/a', 'x/b', 'y/a'],
    [80],
    [
      {
        apply: [
          np('x-a-allows-x-b', podA, {
            ingress: [
              {
                from: [
                  {
                    podSelector: {
                      matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }],
                    },
                  },
                ],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on NamespaceSelector with MatchExpressions',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80],
    [
      {
        apply: [
          np('allow-ns-y-match-selector', podA, {
            ingress: [
              {
                from: [
                  {
                    namespaceSelector: {
                      matchExpressions: [{ key: NS, operator: 'In', values: ['y'] }],
                    },
                  },
                ],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), deny('z/*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on PodSelector or NamespaceSelector',
    ['x/a', 'x/b', 'x/c', 'y/a'],
    [80],
    [
      {
        apply: [
          np('allow-ns-y-match-selector', podA, {
            ingress: [
              {
                from: [{ namespaceSelector: notX }, { podSelector: { matchLabels: { pod: 'b' } } }],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/a', 'x/a'), deny('x/c', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on PodSelector and NamespaceSelector',
    ['x/a', 'x/b', 'y/a', 'y/b', 'z/b'],
    [80],
    [
      {
        apply: [
          np('allow-ns-y-podselector-and-nsselector', podA, {
            ingress: [
              { from: [{ namespaceSelector: notX, podSelector: { matchLabels: { pod: 'b' } } }] },
            ],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a'), allow('y/b', 'x/a'), allow('z/b', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on Multiple PodSelectors and NamespaceSelectors',
    ['x/a', 'x/b', 'y/a', 'y/b', 'y/c'],
    [80],
    [
      {
        apply: [
          np('allow-ns-y-z-pod-b-c', podA, {
            ingress: [
              {
                from: [
                  {
                    namespaceSelector: notX,
                    podSelector: {
                      matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }],
                    },
                  },
                ],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), deny('y/a', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on any PodSelectors',
    ['x/a', 'x/b', 'x/c'],
    [80],
    [
      {
        apply: [
          np('allow-ns-x-pod-b-c', podA, {
            ingress: [
              {
                from: [
                  { podSelector: { matchLabels: { pod: 'b' } } },
                  { podSelector: { matchLabels: { pod: 'c' } } },
                ],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a'), allow('x/b', 'x/a'), allow('x/c', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector',
    ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'],
    [80],
    [
      {
        apply: [np('allow-ns-y-pod-a-via-namespace-pod-selector', podA, { ingress: [yPodA80] })],
        probes: [tcp(80, [deny('*', 'x/a'), allow('y/a', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce policy based on Ports',
    ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'],
    [81],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector', podA, {
            ingress: [
              { from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 81, protocol: 'TCP' }] },
            ],
          }),
        ],
        probes: [tcp(81, [deny('x/*', 'x/a'), allow('y/*', 'x/a'), deny('z/*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should enforce multiple, stacked policies with overlapping podSelectors',
    ['x/a', 'x/b', 'y/a', 'y/b', 'z/a'],
    [80, 81],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector', podA, {
            ingress: [
              { from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 81, protocol: 'TCP' }] },
            ],
          }),
        ],
        probes: [
          tcp(81, [deny('x/*', 'x/a'), allow('y/*', 'x/a'), deny('z/*', 'x/a')]),
          tcp(80, [deny('*', 'x/a')]),
        ],
      },
      {
        apply: [
          np('allow-client-a-via-ns-selector-80', podA, {
            ingress: [
              { from: [{ namespaceSelector: nsIs('y') }], ports: [{ port: 80, protocol: 'TCP' }] },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), allow('y/*', 'x/a'), deny('z/*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should support allow-all policy',
    ['x/a', 'x/b', 'y/a'],
    [80, 81],
    [{ apply: [np('allow-all', {}, { ingress: [{}] })], probes: [tcp(80, []), tcp(81, [])] }],
  ),
  tc(
    'should allow ingress access on one named port',
    ['x/a', 'x/b', 'y/a'],
    [80, 81],
    [
      {
        apply: [np('allow-all', {}, { ingress: [{ ports: [{ port: 'serve-81-tcp' }] }] })],
        probes: [tcp(81, []), tcp(80, [deny('*', 'x/*')])],
      },
    ],
  ),
  tc(
    'should allow ingress access from namespace on one named port',
    ['x/a', 'x/b', 'y/a', 'z/a'],
    [80, 81],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector-80', podA, {
            ingress: [
              {
                from: [{ namespaceSelector: nsIs('y') }],
                ports: [{ port: 'serve-80-tcp', protocol: 'TCP' }],
              },
            ],
          }),
        ],
        probes: [tcp(80, [deny('x/*', 'x/a'), deny('z/*', 'x/a')]), tcp(81, [deny('*', 'x/a')])],
      },
    ],
  ),
  tc(
    'should allow egress access on one named port',
    ['x/a', 'y/a'],
    [80, 81],
    [
      {
        apply: [np('allow-egress', {}, { egress: [{ ports: [{ port: 'serve-80-tcp' }] }] })],
        probes: [tcp(80, []), tcp(81, [deny('x/*', '*')])],
      },
    ],
  ),
  tc(
    'should enforce updated policy',
    ['x/a', 'y/a'],
    [81],
    [
      { apply: [np('allow-all-mutate-to-deny-all', {}, { ingress: [{}] })], probes: [tcp(81, [])] },
      {
        apply: [np('allow-all-mutate-to-deny-all', {}, { ingress: [] })],
        probes: [tcp(81, [deny('*', 'x/*')])],
      },
    ],
  ),
  tc(
    'should allow ingress access from updated namespace',
    ['x/a', 'y/a'],
    [80],
    [
      {
        apply: [
          np('allow-client-a-via-ns-selector', podA, {
            ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns2: 'updated' } } }] }],
          }),
        ],
        probes: [tcp(80, [deny('*', 'x/a')])],
      },
      {
        apply: [
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name: 'y', labels: { ns2: 'updated' } },
          },
        ],
        probes: [tcp(80, [deny('*', 'x/a'), allow('y/*', '*')])],
      },
    ],
  ),
];
