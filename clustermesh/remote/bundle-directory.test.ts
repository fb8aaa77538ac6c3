// BundleDirectory with real signed bundles (certs/) and in-memory remotes: a file added connects,
// a file removed drains, a file changed reconnects with the new bundle (its certificate is the one
// used), tampered/expired/foreign bundles and a bundle of the local cluster are refused.
import test from 'ava';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import {
  createMeshCa,
  issueClientCertificate,
  signBundle,
  type ConnectionBundle,
} from '../../certs/index.ts';
import { MeshTable } from '../kvstore/index.ts';
import { BundleDirectory } from './bundle-directory.ts';
import { FakeRemoteStore } from './fake-source.ts';
import type { RemoteStatus } from './types.ts';
import { CapturingLogger, LOCAL, RecordingSink, remoteFixture, waitFor } from './test-fixtures.ts';

const ca = await createMeshCa();
const otherCa = await createMeshCa();

async function bundleFor(
  cluster: string,
  id: number,
  opts: { signer?: typeof ca; expiresAt?: Date } = {},
) {
  const signer = opts.signer ?? ca;
  const client = await issueClientCertificate(signer, { user: 'remote-c1', validity: { days: 2 } });
  return signBundle(signer, {
    cluster,
    clusterId: id,
    endpoints: [`https://192.0.2.${id}:2379`],
    client,
    ...(opts.expiresAt ? { expiresAt: opts.expiresAt } : {}),
  });
}

function seeded(cluster: string, id: number): FakeRemoteStore {
  const f = remoteFixture(cluster, id);
  const store = new FakeRemoteStore();
  for (const kv of [f.config(), f.node(1), f.identity(1), f.endpoint(1, 5, 1), ...f.canaries()])
    store.put(kv.key, kv.value);
  return store;
}

/** Writes like `isthmus certs` does: a temp file renamed into place. */
async function put(dir: string, name: string, text: string) {
  await writeFile(join(dir, `.${name}.tmp`), text);
  await rename(join(dir, `.${name}.tmp`), join(dir, name));
}

test('bundle directory: add connects, change reconnects with the new bundle, remove drains', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h11-bundles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stores = new Map([
    ['c2', seeded('c2', 2)],
    ['c3', seeded('c3', 3)],
  ]);
  const used: ConnectionBundle[] = [];
  const sink = new RecordingSink();
  const bundles = new BundleDirectory({
    dir,
    trustedCaPem: () => ca.certPem,
    mesh: new MeshTable(LOCAL),
    sink,
    log: new CapturingLogger(),
    registry: new Registry(),
    connect: (b) => {
      used.push(b);
      return stores.get(b.cluster)!.connect();
    },
    backoff: { minMs: 5, maxMs: 20 },
    rescanMs: 10_000, // fs.watch has to do the work here
  });
  t.teardown(() => bundles.stop());
  await put(dir, 'c2.jwt', await bundleFor('c2', 2));
  await bundles.start();
  const ready = (c: string) => bundles.status().find((s) => s.cluster === c)?.ready === true;
  await waitFor('c2 ready', () => ready('c2'));

  await put(dir, 'c3.jwt', await bundleFor('c3', 3));
  await waitFor('c3 ready (fs.watch)', () => ready('c3'));
  t.deepEqual(sink.take(), [
    '+id c2 131073',
    '+id c3 196609',
    '+ip c2 10.2.1.5 131073',
    '+ip c3 10.3.1.5 196609',
    '+node c2 n1 10.2.1.0/24',
    '+node c3 n1 10.3.1.0/24',
  ]);

  const rotated = await bundleFor('c2', 2);
  await put(dir, 'c2.jwt', rotated);
  await waitFor(
    'c2 reconnected',
    () => bundles.status().find((s) => s.cluster === 'c2')?.connections === 2,
  );
  await waitFor('c2 ready again', () => ready('c2'));
  t.is(
    used.at(-1)?.certPem,
    JSON.parse(Buffer.from(rotated.split('.')[1]!, 'base64url').toString()).bundle.certPem,
  );
  t.deepEqual(sink.take(), [], 'a changed bundle relists without deleting what is still there');

  await rm(join(dir, 'c3.jwt'));
  await waitFor('c3 gone', () => !bundles.status().some((s) => s.cluster === 'c3'));
  t.deepEqual(sink.take(), ['-id c3 196609', '-ip c3 10.3.1.5 196609', '-node c3 n1']);
  t.deepEqual(
    bundles.status().map((s) => [s.cluster, s.state]),
    [['c2', 'connected']],
  );
});

test('bundle directory: tampered, expired, foreign-signed and local-cluster bundles are refused with a status', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h11-bundles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const good = await bundleFor('c2', 2);
  const [h, p, s] = good.split('.') as [string, string, string];
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  payload.bundle.clusterId = 9;
  await put(
    dir,
    'tampered.jwt',
    `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`,
  );
  await put(
    dir,
    'expired.jwt',
    await bundleFor('c4', 4, { expiresAt: new Date(Date.now() - 60_000) }),
  );
  await put(dir, 'foreign.jwt', await bundleFor('c5', 5, { signer: otherCa }));
  await put(dir, 'local.jwt', await bundleFor('c1', 1));
  await put(dir, 'garbage.jwt', 'not a bundle');
  let connects = 0;
  const bundles = new BundleDirectory({
    dir,
    trustedCaPem: ca.certPem,
    mesh: new MeshTable(LOCAL),
    sink: new RecordingSink(),
    log: new CapturingLogger(),
    registry: new Registry(),
    connect: () => {
      connects++;
      return new FakeRemoteStore().connect();
    },
  });
  t.teardown(() => bundles.stop());
  await bundles.start();
  const byFile: Record<string, RemoteStatus> = Object.fromEntries(
    bundles.status().map((st) => [st.source, st]),
  );
  t.like(byFile['tampered.jwt'], {
    cluster: 'c2',
    state: 'refused',
    connected: false,
    lastError: { code: 'ERR_BUNDLE_TAMPERED' },
  });
  t.like(byFile['expired.jwt'], {
    cluster: 'c4',
    state: 'refused',
    lastError: { code: 'ERR_BUNDLE_EXPIRED' },
  });
  t.like(byFile['foreign.jwt'], {
    cluster: 'c5',
    state: 'refused',
    lastError: { code: 'ERR_BUNDLE_WRONG_SIGNER' },
  });
  t.like(byFile['local.jwt'], {
    cluster: 'c1',
    state: 'refused',
    lastError: { code: 'ERR_BUNDLE_LOCAL_CLUSTER' },
  });
  t.like(byFile['garbage.jwt'], { state: 'refused', lastError: { code: 'ERR_BUNDLE_MALFORMED' } });
  for (const st of Object.values(byFile)) t.true(st.reason.length > 10, st.reason);
  t.is(connects, 0, 'no connection attempted with a refused bundle');
});

test('bundle directory: a second bundle of a connected cluster, an ID already in use, and a bad update of a good file', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h11-bundles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stores = new Map([
    ['c2', seeded('c2', 2)],
    ['c6', seeded('c6', 2)], // a different cluster announcing c2's ID
  ]);
  const sink = new RecordingSink();
  const bundles = new BundleDirectory({
    dir,
    trustedCaPem: ca.certPem,
    mesh: new MeshTable(LOCAL),
    sink,
    log: new CapturingLogger(),
    registry: new Registry(),
    connect: (b) => stores.get(b.cluster)!.connect(),
    backoff: { minMs: 5, maxMs: 20 },
  });
  t.teardown(() => bundles.stop());
  await put(dir, 'a-c2.jwt', await bundleFor('c2', 2));
  await bundles.start();
  const byFile = () =>
    Object.fromEntries(bundles.status().map((st) => [st.source, st])) as Record<
      string,
      RemoteStatus
    >;
  await waitFor('c2 ready', () => byFile()['a-c2.jwt']?.ready === true);

  await put(dir, 'b-c2-again.jwt', await bundleFor('c2', 2));
  await put(dir, 'c-c6.jwt', await bundleFor('c6', 2));
  await bundles.rescan();
  await waitFor('c6 refused', () => byFile()['c-c6.jwt']?.state === 'refused');
  t.like(byFile()['b-c2-again.jwt'], {
    state: 'refused',
    lastError: { code: 'ERR_BUNDLE_DUPLICATE' },
  });
  t.like(byFile()['c-c6.jwt'], { cluster: 'c6', lastError: { code: 'cluster-id-in-use' } });
  t.regex(byFile()['c-c6.jwt']!.reason, /already used by cluster c2/);

  // a good file replaced by a tampered one: refused, the running remote keeps its bundle
  const [h, p, s] = (await bundleFor('c2', 2)).split('.') as [string, string, string];
  await put(dir, 'a-c2.jwt', `${h}.${p}.${s.slice(0, -4)}AAAA`);
  await bundles.rescan();
  t.like(byFile()['a-c2.jwt'], {
    state: 'connected',
    connections: 1,
    lastError: { code: 'ERR_BUNDLE_TAMPERED' },
  });
  t.deepEqual(
    sink.take().filter((c) => c.startsWith('-')),
    [],
    'nothing deleted',
  );
  // the first c2 file removed: c2 drains, and the second c2 bundle, no longer a duplicate, connects
  // (c6 goes first: with ID 2 free it could otherwise connect first and refuse c2 in turn)
  await rm(join(dir, 'c-c6.jwt'));
  await rm(join(dir, 'a-c2.jwt'));
  await bundles.rescan();
  await waitFor('second c2 bundle connected', () => byFile()['b-c2-again.jwt']?.ready === true);
  t.is(byFile()['a-c2.jwt'], undefined);
});
