// Allocation races made deterministic on the in-memory API: another agent's create is slipped in
// just before ours.
import test from 'ava';
import { FakeKubeApi } from '../k8s/fake-api.ts';
import { CiliumIdentities } from '../k8s/resources.ts';
import type { KubeObject, ResourceDef } from '../k8s/types.ts';
import { K8sIdentityAllocator } from './k8s-allocator.ts';
import { identityObject } from './k8s-identity-object.ts';
import { podSecurityLabels } from './labels.ts';
import { IdentityError, makeIdentity } from './types.ts';

const labels = (app: string) =>
  podSecurityLabels({ cluster: 'c1', namespace: 'x', podLabels: { app }, namespaceLabels: {} });

/** A fake whose next create of an identity is preceded by `before()` (another agent). */
class RacingApi extends FakeKubeApi {
  before: (() => Promise<void>) | undefined;
  override async create<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T> {
    const hook = this.before;
    this.before = undefined;
    if (hook) await hook();
    return super.create(def, obj);
  }
}

test('two agents create different ids for one label set: the older wins, the newer is deleted', async (t) => {
  const api = new RacingApi();
  const a = new K8sIdentityAllocator({ api, clusterId: 1 });
  const other = makeIdentity(1, 300);
  api.before = async () => {
    await api.create(CiliumIdentities, identityObject(other, labels('db')));
  };
  const got = await a.allocateAsync(labels('db'));
  t.is(got.id, other);
  t.is(a.stats.duplicatesResolved, 1);
  const { items } = await api.list(CiliumIdentities);
  t.deepEqual(
    items.map((o) => o.metadata.name),
    [String(other)],
  );
});

test('AlreadyExists for the same labels under the same id: shared, counted as a conflict', async (t) => {
  const api = new RacingApi();
  const a = new K8sIdentityAllocator({ api, clusterId: 1 });
  api.before = async () => {
    await api.create(CiliumIdentities, identityObject(makeIdentity(1, 256), labels('db')));
  };
  t.is((await a.allocateAsync(labels('db'))).id, makeIdentity(1, 256));
  t.is(a.stats.conflicts, 1);
  t.is(a.stats.reused, 1);
  t.is(a.stats.created, 0);
});

test('AlreadyExists for other labels: the next free id', async (t) => {
  const api = new RacingApi();
  const a = new K8sIdentityAllocator({ api, clusterId: 1 });
  api.before = async () => {
    await api.create(CiliumIdentities, identityObject(makeIdentity(1, 256), labels('web')));
  };
  t.is((await a.allocateAsync(labels('db'))).id, makeIdentity(1, 257));
  t.is(a.stats.conflicts, 1);
  t.is(a.stats.created, 1);
});

test('concurrent allocations of one label set in one agent make one request chain', async (t) => {
  const api = new FakeKubeApi();
  const a = new K8sIdentityAllocator({ api, clusterId: 1 });
  const got = await Promise.all(Array.from({ length: 10 }, () => a.allocateAsync(labels('db'))));
  t.is(new Set(got.map((r) => r.id)).size, 1);
  t.is(a.stats.created, 1);
  for (let i = 0; i < 9; i++) t.false(a.release(got[0]!.id));
  t.true(a.release(got[0]!.id), 'ten references, freed by the tenth release');
});

test('out of identities: a coded error saying what to do', async (t) => {
  const api = new FakeKubeApi();
  const a = new K8sIdentityAllocator({ api, clusterId: 1, maxLocal: 256 });
  await a.allocateAsync(labels('a'));
  const err = await t.throwsAsync(() => a.allocateAsync(labels('b')), {
    instanceOf: IdentityError,
  });
  t.is((err as IdentityError).code, 'IDENTITY_EXHAUSTED');
  t.regex(err!.message, /remove unused label sets/);
});
