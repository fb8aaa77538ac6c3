import test from 'ava';
import { InMemoryIdentityAllocator } from './allocator.ts';
import {
  labelsFromString,
  labelsToString,
  podSecurityLabels,
  reservedIdentities,
} from './labels.ts';
import { clusterOf, IdentityError, makeIdentity } from './types.ts';

const labels = (app: string) =>
  podSecurityLabels({
    cluster: 'c2',
    namespace: 'prod',
    podLabels: { app },
    namespaceLabels: { team: 'db' },
  });

test('security labels of a pod and their kvstore string form', (t) => {
  t.is(
    labelsToString(labels('db')),
    'k8s:app=db;k8s:io.cilium.k8s.namespace.labels.team=db;k8s:io.cilium.k8s.policy.cluster=c2;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=prod;',
  );
  t.deepEqual([...labelsFromString(labelsToString(labels('db')))].sort(), [...labels('db')].sort());
  t.deepEqual(
    reservedIdentities()
      .map((r) => [r.id, labelsToString(r.labels)])
      .slice(0, 2),
    [
      [1, 'reserved:host=;'],
      [2, 'reserved:world=;'],
    ],
  );
});

test('identities carry the cluster ID in the top bits; same labels, same identity', (t) => {
  const a = new InMemoryIdentityAllocator(3);
  const db = a.allocate(labels('db'));
  t.is(db.id, makeIdentity(3, 256));
  t.is(clusterOf(db.id), 3);
  t.is(a.allocate(labels('db')).id, db.id);
  t.is(a.allocate(labels('web')).id, makeIdentity(3, 257));
});

test('released identities are freed after the last reference and reused lowest first', (t) => {
  const a = new InMemoryIdentityAllocator(1);
  const db = a.allocate(labels('db'));
  a.allocate(labels('db'));
  a.allocate(labels('web'));
  t.false(a.release(db.id));
  t.true(a.release(db.id));
  t.is(a.lookup(db.id), undefined);
  t.is(a.allocate(labels('cache')).id, db.id);
});

test('running out of identities is a coded error; bad cluster IDs are refused', (t) => {
  const a = new InMemoryIdentityAllocator(1, 257);
  a.allocate(labels('a'));
  a.allocate(labels('b'));
  const err = t.throws(() => a.allocate(labels('c')), { instanceOf: IdentityError });
  t.is(err?.code, 'IDENTITY_EXHAUSTED');
  t.is(
    t.throws(() => new InMemoryIdentityAllocator(0), { instanceOf: IdentityError })?.code,
    'IDENTITY_BAD_CLUSTER',
  );
  t.is(
    t.throws(() => new InMemoryIdentityAllocator(256), { instanceOf: IdentityError })?.code,
    'IDENTITY_BAD_CLUSTER',
  );
});
