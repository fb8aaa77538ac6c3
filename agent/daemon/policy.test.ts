// Control-plane logic of the agent's policy path on the in-memory datapath: policy objects into
// the engine (bad input keeps the last good version), engine deltas into the maps, and the full
// pass that reads the maps back and repairs drift.
import test from 'ava';
import { createFakeDatapath } from '../datapath/fake.ts';
import { podSecurityLabels } from '../identity/labels.ts';
import { makeIdentity } from '../identity/types.ts';
import type { KubeObject } from '../k8s/types.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { Protocol } from '../policy/entry.ts';
import { EndpointPolicyReconciler } from './endpoint-policy.ts';
import { PolicySources } from './policy-sources.ts';

const A = makeIdentity(1, 256);
const B = makeIdentity(1, 257);
const labels = (app: string) =>
  podSecurityLabels({ cluster: 'c1', namespace: 'x', podLabels: { app }, namespaceLabels: {} });

function setup() {
  const dp = createFakeDatapath();
  const engine = new PolicyEngine('c1');
  const logs: string[] = [];
  const policy = new EndpointPolicyReconciler(engine, dp, { intervalMs: 0 });
  const sources = new PolicySources(
    engine,
    (d) => policy.applyDeltas(d),
    (msg) => logs.push(msg),
  );
  engine.upsertIdentity(A, labels('a'));
  engine.upsertIdentity(B, labels('b'));
  // the endpoint row exists before the first policy write (the datapath's contract)
  dp.endpoints.set('10.1.0.2', {
    endpointId: 1,
    ifindex: 10,
    identity: B,
    ingressEnforced: false,
    egressEnforced: false,
  });
  engine.upsertEndpoint({ name: 'x/b', identity: B, namedPorts: [] });
  policy.bind('x/b', 1);
  return { dp, engine, policy, sources, logs };
}

const np = (rv: string, fromApp: string | number): KubeObject & { spec: unknown } => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 'b-in', namespace: 'x', resourceVersion: rv },
  spec: {
    podSelector: { matchLabels: { app: 'b' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: fromApp } } }] }],
  },
});

test('a valid policy reaches the maps; an invalid update keeps the last good version', (t) => {
  const { dp, policy, sources, logs } = setup();
  sources.apply('NetworkPolicy', 'x/b-in', np('10', 'a'));
  t.true(dp.endpoints.get('10.1.0.2')!.ingressEnforced);
  const entries = dp.policy.read(1);
  t.true(entries.some((e) => e.peer === A && e.direction === 'ingress' && !e.deny));
  t.true(policy.status()[0]!.converged);
  const revision = policy.status()[0]!.revision;

  // a number where a label value must be a string: rejected whole, reported, nothing changes
  sources.apply('NetworkPolicy', 'x/b-in', np('11', 7));
  t.deepEqual(dp.policy.read(1), entries);
  const [invalid] = sources.invalidPolicies();
  t.is(invalid?.key, 'NetworkPolicy/x/b-in');
  t.is(invalid?.resourceVersion, '11');
  t.true(invalid?.lastGoodEnforced);
  t.truthy(invalid?.reason);
  t.is(policy.status()[0]!.revision, revision, 'the desired policy did not change');
  t.is(logs.length, 1);
  t.deepEqual(sources.observed(), new Map([['NetworkPolicy/x/b-in', '11']]));

  // fixed again, then deleted: enforcement goes away with the object
  sources.apply('NetworkPolicy', 'x/b-in', np('12', 'a'));
  t.deepEqual(sources.invalidPolicies(), []);
  sources.apply('NetworkPolicy', 'x/b-in', undefined);
  t.false(dp.endpoints.get('10.1.0.2')!.ingressEnforced);
  t.deepEqual(dp.policy.read(1), []);
  t.deepEqual(sources.observed(), new Map());
});

test('a policy that is invalid from the start is reported and enforces nothing', (t) => {
  const { dp, sources } = setup();
  sources.apply('CiliumNetworkPolicy', 'x/l7', {
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'l7', namespace: 'x', resourceVersion: '3' },
    spec: {
      endpointSelector: { matchLabels: { app: 'b' } },
      ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }], rules: { http: [{}] } }] }],
    },
  } as KubeObject);
  t.false(dp.endpoints.get('10.1.0.2')!.ingressEnforced);
  t.is(sources.invalidPolicies()[0]?.lastGoodEnforced, false);
});

test('the full pass reads the maps back and repairs an entry changed behind its back', (t) => {
  const { dp, policy, sources } = setup();
  sources.apply('NetworkPolicy', 'x/b-in', np('10', 'a'));
  const good = dp.policy.read(1);
  dp.policy.replace(1, [
    ...good,
    {
      direction: 'ingress',
      peer: 9999,
      protocol: Protocol.TCP,
      port: 80,
      portPrefixLen: 16,
      deny: false,
    },
  ]);
  t.false(policy.status()[0]!.converged);
  t.is(policy.fullPass().repaired, 1);
  t.deepEqual(dp.policy.read(1), good);
  t.true(policy.status()[0]!.converged);
  // flags too: an endpoint row loosened behind the agent is tightened again
  dp.endpoints.set('10.1.0.2', { ...dp.endpoints.get('10.1.0.2')!, ingressEnforced: false });
  t.false(policy.status()[0]!.converged);
  t.is(policy.fullPass().repaired, 1);
  t.true(dp.endpoints.get('10.1.0.2')!.ingressEnforced);
});
