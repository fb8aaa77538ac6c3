import test from 'ava';
import { podSecurityLabels } from '../identity/labels.ts';
import { makeIdentity, ReservedIdentity } from '../identity/types.ts';
import { PolicyEngine } from './engine.ts';
import { Protocol } from './entry.ts';
import { PolicyLookup } from './lookup.ts';
import { parseCiliumPolicy } from './parse-cilium.ts';
import { parseNetworkPolicy } from './parse-k8s.ts';
import type { ParsedPolicy } from './types.ts';

type Obj = Record<string, unknown>;
const pod = (cluster: string, ns: string, labels: Record<string, string>) =>
  podSecurityLabels({
    cluster,
    namespace: ns,
    podLabels: labels,
    namespaceLabels: { 'kubernetes.io/metadata.name': ns },
  });
const cnp = (spec: Obj, name = 'p'): ParsedPolicy => {
  const r = parseCiliumPolicy(
    { kind: 'CiliumNetworkPolicy', metadata: { name, namespace: 'x' }, spec },
    'CiliumNetworkPolicy',
    'c1',
  );
  if (!r.ok) throw r.error;
  return r.value[0]!;
};
const A = makeIdentity(1, 256);
const B = makeIdentity(1, 257);
const REMOTE = makeIdentity(2, 300);

function engineWithA(): PolicyEngine {
  const e = new PolicyEngine('c1');
  e.upsertIdentity(A, pod('c1', 'x', { app: 'a' }));
  e.upsertIdentity(B, pod('c1', 'x', { app: 'b' }));
  e.upsertEndpoint({
    name: 'x/a',
    identity: A,
    namedPorts: [{ name: 'http', port: 8080, protocol: Protocol.TCP }],
  });
  return e;
}

function verdict(
  e: PolicyEngine,
  dir: 'ingress' | 'egress',
  peer: number,
  port = 80,
  ip?: string,
  proto: number = Protocol.TCP,
) {
  return new PolicyLookup(e.policyOf('x/a')).decide(dir, peer, ip, proto as 6, port).allowed;
}

test('entities map to reserved identities: world, host, remote-node, cluster, all', (t) => {
  const e = engineWithA();
  e.upsertPolicy(
    cnp({
      endpointSelector: { matchLabels: { app: 'a' } },
      ingress: [{ fromEntities: ['world', 'remote-node'] }],
      egress: [{ toEntities: ['cluster'] }],
    }),
  );
  t.true(verdict(e, 'ingress', ReservedIdentity.world));
  t.true(verdict(e, 'ingress', ReservedIdentity['remote-node']));
  t.false(verdict(e, 'ingress', B));
  t.true(verdict(e, 'egress', B));
  t.true(verdict(e, 'egress', ReservedIdentity.host));
  t.false(verdict(e, 'egress', ReservedIdentity.world));
  e.upsertIdentity(REMOTE, pod('c2', 'x', { app: 'b' }));
  t.false(verdict(e, 'egress', REMOTE), 'cluster means the local cluster');
  e.upsertPolicy(cnp({ endpointSelector: {}, egress: [{ toEntities: ['all'] }] }, 'all'));
  t.true(verdict(e, 'egress', REMOTE));
  t.true(verdict(e, 'egress', ReservedIdentity.world));
});

test('the own node is always admitted, even under default deny', (t) => {
  const e = engineWithA();
  e.upsertPolicy(cnp({ endpointSelector: {}, ingress: [{}] }));
  t.true(
    new PolicyLookup(e.policyOf('x/a')).decide(
      'ingress',
      ReservedIdentity.host,
      undefined,
      Protocol.TCP,
      10250,
    ).allowed,
  );
  t.false(verdict(e, 'ingress', B));
});

test('a new remote identity yields a delta for that peer only; its removal takes it back', (t) => {
  const e = engineWithA();
  e.upsertPolicy(
    cnp({
      endpointSelector: { matchLabels: { app: 'a' } },
      ingress: [
        {
          fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.policy.cluster': 'c2', app: 'b' } }],
          toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
        },
      ],
    }),
  );
  const before = e.policyOf('x/a').entries.length;
  const added = e.upsertIdentity(REMOTE, pod('c2', 'x', { app: 'b' }));
  t.is(added.length, 1);
  t.is(added[0]!.endpoint, 'x/a');
  t.deepEqual(added[0]!.add, [
    {
      direction: 'ingress',
      peer: REMOTE,
      protocol: Protocol.TCP,
      port: 80,
      portPrefixLen: 16,
      deny: false,
    },
  ]);
  t.deepEqual(added[0]!.remove, []);
  t.is(e.policyOf('x/a').entries.length, before + 1);
  t.deepEqual(
    e.upsertIdentity(makeIdentity(2, 301), pod('c2', 'y', { app: 'b' })),
    [],
    'other namespace: no change',
  );
  const removed = e.removeIdentity(REMOTE);
  t.deepEqual(removed[0]!.remove, added[0]!.add);
  t.is(e.policyOf('x/a').entries.length, before);
});

test('egress named ports resolve over every pod with the destination identity', (t) => {
  const e = engineWithA();
  e.setPodNamedPorts('c1/x/b-1', B, [{ name: 'web', port: 8000, protocol: Protocol.TCP }]);
  e.setPodNamedPorts('c1/x/b-2', B, [{ name: 'web', port: 9000, protocol: Protocol.TCP }]);
  e.upsertPolicy(
    cnp({
      endpointSelector: { matchLabels: { app: 'a' } },
      egress: [
        { toEndpoints: [{ matchLabels: { app: 'b' } }], toPorts: [{ ports: [{ port: 'web' }] }] },
      ],
    }),
  );
  t.true(verdict(e, 'egress', B, 8000));
  t.true(verdict(e, 'egress', B, 9000));
  t.false(verdict(e, 'egress', B, 80));
  const d = e.setPodNamedPorts('c1/x/b-2', B, undefined);
  t.is(d.length, 1);
  t.false(verdict(e, 'egress', B, 9000));
});

test('ingress named ports resolve against the endpoint itself; protocol must match', (t) => {
  const e = engineWithA();
  const r = parseNetworkPolicy(
    {
      kind: 'NetworkPolicy',
      metadata: { name: 'n', namespace: 'x' },
      spec: {
        podSelector: {},
        ingress: [{ ports: [{ port: 'http' }, { port: 'http', protocol: 'UDP' }] }],
      },
    },
    'c1',
  );
  if (!r.ok) throw r.error;
  e.upsertPolicy(r.value);
  t.true(verdict(e, 'ingress', B, 8080));
  t.false(verdict(e, 'ingress', B, 8080, undefined, Protocol.UDP));
});

test('deltas report enforcement changes and removal of every entry with the policy', (t) => {
  const e = engineWithA();
  const d1 = e.upsertPolicy(cnp({ endpointSelector: {}, ingress: [{ fromEndpoints: [{}] }] }));
  t.is(d1[0]!.ingressEnforced, true);
  t.true(d1[0]!.add.length > 0);
  const d2 = e.deletePolicy('CiliumNetworkPolicy/x/p');
  t.is(d2[0]!.ingressEnforced, false);
  t.is(d2[0]!.remove.length, d1[0]!.add.length);
  t.deepEqual(e.policyOf('x/a').entries, []);
});

test('the rules behind a decision are reported', (t) => {
  const e = engineWithA();
  e.upsertPolicy(
    cnp(
      { endpointSelector: {}, ingress: [{ fromEndpoints: [{ matchLabels: { app: 'b' } }] }] },
      'allow',
    ),
  );
  e.upsertPolicy(
    cnp(
      {
        endpointSelector: {},
        ingressDeny: [{ fromCIDR: ['10.0.0.0/8'], toPorts: [{ ports: [{ port: '22' }] }] }],
      },
      'deny',
    ),
  );
  const v = new PolicyLookup(e.policyOf('x/a')).decide('ingress', B, '10.1.2.3', Protocol.TCP, 22);
  t.false(v.allowed);
  const deny = v.matches.find((m) => m.entry.deny)!;
  t.is(deny.kind, 'prefix');
  const refs = e.contributionsFor('x/a', 'ingress', deny.entry.peer).filter((c) => c.deny);
  t.deepEqual(
    refs.map((c) => `${c.ref.policy} ${c.ref.path}`),
    ['CiliumNetworkPolicy/x/deny spec.ingressDeny[0]'],
  );
});

test('egress named ports towards a CIDR resolve over every known pod', (t) => {
  const e = engineWithA();
  e.setPodNamedPorts('c1/x/b-1', B, [{ name: 'web', port: 8000, protocol: Protocol.TCP }]);
  e.upsertPolicy(
    cnp({
      endpointSelector: { matchLabels: { app: 'a' } },
      egress: [{ toCIDR: ['192.168.0.0/16'], toPorts: [{ ports: [{ port: 'web' }] }] }],
    }),
  );
  t.true(verdict(e, 'egress', ReservedIdentity.world, 8000, '192.168.1.1'));
  t.false(verdict(e, 'egress', ReservedIdentity.world, 8000, '10.0.0.1'));
  t.false(verdict(e, 'egress', ReservedIdentity.world, 9000, '192.168.1.1'));
  const d = e.setPodNamedPorts('c1/x/b-2', B, [
    { name: 'web', port: 9000, protocol: Protocol.TCP },
  ]);
  t.is(d.length, 1);
  t.true(verdict(e, 'egress', ReservedIdentity.world, 9000, '192.168.1.1'));
});
