// Batched read-back: one walk of the policy/prefix maps serves every endpoint, reads equal the
// unbatched ones, writes inside a batch are seen by later reads, and nothing stays cached after.
import test from 'ava';
import { Protocol, PREFIX_CLASS_BASE, type EndpointPolicy } from '../policy/entry.ts';
import { createFakeDatapath } from './fake.ts';

const policyFor = (peer: number): EndpointPolicy => ({
  ingressEnforced: true,
  egressEnforced: false,
  entries: [
    {
      direction: 'ingress',
      peer,
      protocol: Protocol.TCP,
      port: 80,
      portPrefixLen: 16,
      deny: false,
    },
    {
      direction: 'ingress',
      peer: PREFIX_CLASS_BASE + 1,
      protocol: Protocol.ANY,
      port: 0,
      portPrefixLen: 0,
      deny: false,
    },
  ],
  prefixes: [
    { direction: 'ingress', cidr: `10.${peer % 200}.0.0/16`, classId: PREFIX_CLASS_BASE + 1 },
  ],
});

function datapathWith(endpoints: number) {
  const dp = createFakeDatapath();
  for (let id = 1; id <= endpoints; id++) {
    dp.endpoints.set(`10.1.0.${id}`, {
      endpointId: id,
      ifindex: 100 + id,
      identity: 1000 + id,
      ingressEnforced: false,
      egressEnforced: false,
    });
    dp.applyEndpointPolicy(id, policyFor(id));
  }
  return dp;
}

test('reads inside a batch equal reads outside it, and the maps are walked once', (t) => {
  const dp = datapathWith(20);
  const plain = [1, 7, 20, 99].map((id) => [dp.policy.read(id), dp.prefixes.read(id)]);
  let walks = 0;
  const entries = dp.policy.entries.bind(dp.policy);
  dp.policy.entries = function* () {
    walks++;
    yield* entries();
  };
  const batched = dp.batchReadBack(() =>
    [1, 7, 20, 99].map((id) => [dp.policy.read(id), dp.prefixes.read(id)]),
  );
  t.deepEqual(batched, plain);
  t.is(walks, 1);
  t.true(
    dp.batchReadBack(() => [1, 2, 3].every((id) => dp.endpointPolicyConverged(id, policyFor(id)))),
  );
  t.is(walks, 2);
});

test('a write inside a batch is seen by the reads after it; nothing is cached after the batch', (t) => {
  const dp = datapathWith(3);
  dp.batchReadBack(() => {
    t.true(dp.endpointPolicyConverged(2, policyFor(2)));
    dp.applyEndpointPolicy(2, policyFor(42));
    t.true(dp.endpointPolicyConverged(2, policyFor(42)));
    t.false(dp.endpointPolicyConverged(2, policyFor(2)));
    const egress = { ...policyFor(42), egressEnforced: true };
    t.false(dp.endpointPolicyConverged(2, egress));
    dp.applyEndpointPolicy(2, egress);
    t.true(dp.endpointPolicyConverged(2, egress), 'flags written in the batch are read back');
  });
  dp.policy.replace(3, []);
  t.deepEqual(dp.policy.read(3), []);
  t.false(dp.endpointPolicyConverged(3, policyFor(3)));
});
