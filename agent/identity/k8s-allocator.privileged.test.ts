// Cluster-wide identity allocation against the real lab API server and etcd, with allocators in
// separate processes racing for the same label sets.
import test from 'ava';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestCluster, waitFor } from '../k8s/test-support.ts';
import { CiliumIdentities } from '../k8s/resources.ts';
import { K8sIdentityAllocator, type AllocatorStats } from './k8s-allocator.ts';
import { identityId, identityLabels, identityObject } from './k8s-identity-object.ts';
import { Resource } from '../k8s/resource.ts';
import { labelsToString, podSecurityLabels } from './labels.ts';
import { IdentityError, makeIdentity } from './types.ts';

const CHILD = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'k8s-allocator-test-child.ts',
);

function labelSet(i: number): string {
  return labelsToString(
    podSecurityLabels({
      cluster: 'c1',
      namespace: `ns-${i % 5}`,
      podLabels: { app: `app-${i}` },
      namespaceLabels: { team: 't' },
    }),
  );
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface ChildResult {
  ids: Record<string, number>;
  stats: AllocatorStats;
  elapsedMs: number;
}

function runChild(input: object): { done: Promise<ChildResult>; pid: number; go(): void } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (err += b));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<ChildResult>((resolve, reject) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out) as ChildResult);
      else reject(new Error(`allocator child ${child.pid} exited ${code}: ${err}`));
    }),
  );
  return { done, pid: child.pid!, go: () => child.stdin.end(JSON.stringify(input)) };
}

test.serial(
  '4 allocator processes racing for 50 label sets agree on one identity each',
  async (t) => {
    const c = await startTestCluster(t, 'h6ida');
    const sets = Array.from({ length: 50 }, (_, i) => labelSet(i));
    const children = [0, 1, 2, 3].map((n) =>
      runChild({
        socketPath: c.socketPath,
        clusterId: 1,
        labelSets: shuffled(sets, n + 1),
        concurrency: 6,
      }),
    );
    // Node's start-up dominates; give every child a moment, then release all at once.
    await new Promise((r) => setTimeout(r, 1500));
    for (const ch of children) ch.go();
    const results = await Promise.all(children.map((ch) => ch.done));

    for (const set of sets) {
      const ids = new Set(results.map((r) => r.ids[set]));
      t.is(ids.size, 1, `one identity for ${set}, got ${[...ids]}`);
    }
    const chosen = sets.map((s) => results[0]!.ids[s]!);
    t.is(new Set(chosen).size, 50, 'different label sets got different identities');

    const { items } = await c.api.list(CiliumIdentities);
    t.is(items.length, 50, 'losing duplicates were deleted');
    for (const obj of items) {
      const id = identityId(obj)!;
      const text = labelsToString(identityLabels(obj));
      t.is(results[0]!.ids[text], id, `object ${id} holds the labels it was chosen for`);
    }

    const total = (k: keyof AllocatorStats) => results.reduce((n, r) => n + r.stats[k], 0);
    t.log(
      `created ${total('created')}, reused ${total('reused')}, 409 AlreadyExists ${total('conflicts')}, ` +
        `duplicates resolved ${total('duplicatesResolved')}; per process ${results.map((r) => r.elapsedMs).join('/')} ms`,
    );
    t.true(total('conflicts') > 0, 'allocators really collided on ids');
    t.is(total('created'), 50, 'exactly one winning create per label set');
    t.is(total('created') + total('reused') + total('duplicatesResolved'), 200);
  },
);

test.serial('same labels -> same identity; references; exhaustion is a clear error', async (t) => {
  const c = await startTestCluster(t, 'h6idb');
  const a = new K8sIdentityAllocator({ api: c.api, clusterId: 3, maxLocal: 257 });
  const b = new K8sIdentityAllocator({ api: c.api, clusterId: 3, maxLocal: 257 });
  const l1 = podSecurityLabels({
    cluster: 'c3',
    namespace: 'x',
    podLabels: { app: 'a' },
    namespaceLabels: {},
  });
  const l2 = podSecurityLabels({
    cluster: 'c3',
    namespace: 'x',
    podLabels: { app: 'b' },
    namespaceLabels: {},
  });
  const l3 = podSecurityLabels({
    cluster: 'c3',
    namespace: 'x',
    podLabels: { app: 'c' },
    namespaceLabels: {},
  });
  const r1 = await a.allocateAsync(l1);
  t.is(r1.id, makeIdentity(3, 256));
  t.is((await b.allocateAsync(l1)).id, r1.id);
  t.is(b.allocate(l1).id, r1.id, 'the synchronous form serves a held label set');
  t.is((await b.allocateAsync(l2)).id, makeIdentity(3, 257));
  t.is(b.stats.reused, 1);
  const err = await t.throwsAsync(() => a.allocateAsync(l3), { instanceOf: IdentityError });
  t.is((err as IdentityError).code, 'IDENTITY_EXHAUSTED');
  t.false(b.release(r1.id), 'one reference of two dropped');
  t.true(b.release(r1.id));
  t.is(b.lookup(r1.id), undefined);
  t.is(a.lookup(r1.id)?.id, r1.id);
  const unknown = t.throws(() => b.allocate(l3), { instanceOf: IdentityError });
  t.is(unknown?.code, 'IDENTITY_UNKNOWN');
});

test.serial(
  'a held identity deleted behind the allocator’s back is re-created under its id',
  async (t) => {
    const c = await startTestCluster(t, 'h6idr');
    const identities = new Resource(c.api, CiliumIdentities);
    identities.start();
    t.teardown(() => identities.stop());
    const lost: number[] = [];
    const a = new K8sIdentityAllocator({
      api: c.api,
      clusterId: 2,
      identities,
      onLost: (_l, id) => lost.push(id),
    });
    const l1 = podSecurityLabels({
      cluster: 'c2',
      namespace: 'x',
      podLabels: { app: 'a' },
      namespaceLabels: {},
    });
    const l2 = podSecurityLabels({
      cluster: 'c2',
      namespace: 'x',
      podLabels: { app: 'b' },
      namespaceLabels: {},
    });
    const r1 = await a.allocateAsync(l1);
    const r2 = await a.allocateAsync(l2);
    await c.writer.delete(CiliumIdentities, String(r1.id));
    await waitFor(
      () => a.stats.restored === 1 && identities.get(String(r1.id)) !== undefined,
      5000,
      'restore',
    );
    const back = await c.api.get(CiliumIdentities, String(r1.id));
    t.is(labelsToString(identityLabels(back)), labelsToString(l1));

    // The id went to another label set meanwhile: the holder hears it lost the identity.
    await identities.stop();
    await c.writer.delete(CiliumIdentities, String(r2.id));
    const other = podSecurityLabels({
      cluster: 'c2',
      namespace: 'x',
      podLabels: { app: 'z' },
      namespaceLabels: {},
    });
    await c.writer.create(CiliumIdentities, identityObject(r2.id, other));
    t.deepEqual(
      (await a.restoreHeld()).map((l) => labelsToString(l)),
      [labelsToString(l2)],
    );
    t.deepEqual(lost, [r2.id]);
    t.not((await a.allocateAsync(l2)).id, r2.id, 'allocating again yields a new identity');
  },
);
