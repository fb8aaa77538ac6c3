// The secured mesh etcd: real etcd 3.4 with TLS client-certificate auth in a test namespace.
// The writer writes `cilium/`, a remote reader reads but cannot write, a revoked reader cannot
// read any more, a certificate of another CA is refused, and the set-up is idempotent.
import test from 'ava';
import type { Etcd3 } from 'etcd3';
import { createTestNetns } from '../../integration/etcd/test-netns.ts';
import { WRITER_USER, remoteReaderUser } from '../../certs/index.ts';
import {
  addRemoteReader,
  listRemoteReaders,
  revokeRemoteReader,
  setupMeshEtcdAuth,
  ROOT_USER,
} from '../etcd-auth.ts';
import { startMeshEtcd, type MeshEtcd } from './test-support.ts';

async function meshEtcd(t: import('ava').ExecutionContext): Promise<MeshEtcd> {
  const ns = createTestNetns('h10auth');
  t.teardown(() => ns.remove());
  const mesh = await startMeshEtcd({
    prefix: 'h10auth',
    netns: ns.name,
    cluster: 'c1',
    readers: ['c2'],
  });
  t.teardown(() => mesh.stop());
  return mesh;
}

function client(t: import('ava').ExecutionContext, mesh: MeshEtcd, name: string): Etcd3 {
  const c = mesh.clientAs(name);
  t.teardown(() => c.close());
  return c;
}

const NODE_KEY = 'cilium/state/nodes/v1/c1/n1';

test.serial(
  'writer writes cilium/, a remote reader only reads it, revoking it stops its reads',
  async (t) => {
    const mesh = await meshEtcd(t);
    const root = client(t, mesh, ROOT_USER);
    const writer = client(t, mesh, WRITER_USER);
    t.is(await addRemoteReader(root, 'c2'), 'remote-c2');
    t.deepEqual(await listRemoteReaders(root), ['c2']);

    await writer.put(NODE_KEY).value('{"Name":"n1"}');
    const reader = client(t, mesh, remoteReaderUser('c2'));
    t.is(await reader.get(NODE_KEY).string(), '{"Name":"n1"}');
    t.deepEqual(await reader.getAll().prefix('cilium/').keys(), [NODE_KEY]);

    const write = await t.throwsAsync(reader.put('cilium/state/nodes/v1/c1/evil').value('{}'));
    t.regex(String(write?.message), /permission denied/);
    const del = await t.throwsAsync(reader.delete().key(NODE_KEY));
    t.regex(String(del?.message), /permission denied/);
    const outside = await t.throwsAsync(reader.get('registry/secrets/x').string());
    t.regex(String(outside?.message), /permission denied/);
    // the writer is confined to cilium/ as well
    await t.throwsAsync(writer.put('other/key').value('x'));

    t.true(await revokeRemoteReader(root, 'c2'));
    t.false(await revokeRemoteReader(root, 'c2'));
    t.deepEqual(await listRemoteReaders(root), []);
    // the same open connection: etcd looks the CN's user up on every request
    await t.throwsAsync(reader.get(NODE_KEY).string());
    const fresh = client(t, mesh, remoteReaderUser('c2'));
    await t.throwsAsync(fresh.get(NODE_KEY).string());
    t.is(await writer.get(NODE_KEY).string(), '{"Name":"n1"}');
  },
);

test.serial('set-up is idempotent and a reader added again regains read access', async (t) => {
  const mesh = await meshEtcd(t);
  const root = client(t, mesh, ROOT_USER);
  await setupMeshEtcdAuth(root);
  await setupMeshEtcdAuth(root);
  await addRemoteReader(root, 'c3');
  await addRemoteReader(root, 'c3');
  await mesh.issue('remote-c3', remoteReaderUser('c3'));
  const writer = client(t, mesh, WRITER_USER);
  await writer.put(NODE_KEY).value('v');
  t.is(await client(t, mesh, 'remote-c3').get(NODE_KEY).string(), 'v');
  await revokeRemoteReader(root, 'c3');
  await addRemoteReader(root, 'c3');
  t.is(await client(t, mesh, 'remote-c3').get(NODE_KEY).string(), 'v');
  await t.throwsAsync(addRemoteReader(root, 'Bad/Name'), { message: /invalid cluster name/ });
});

test.serial('clients without a valid mesh certificate are refused', async (t) => {
  const mesh = await meshEtcd(t);
  await addRemoteReader(client(t, mesh, ROOT_USER), 'c2');
  await client(t, mesh, WRITER_USER).put(NODE_KEY).value('v');
  t.is(await client(t, mesh, remoteReaderUser('c2')).get(NODE_KEY).string(), 'v');
  // the same CN as the real reader, signed by another CA: the TLS handshake fails
  await mesh.issue('foreign', remoteReaderUser('c2'), { foreign: true });
  const foreign = client(t, mesh, 'foreign');
  const refused = await t.throwsAsync(withTimeout(foreign.get(NODE_KEY).string(), 8000));
  t.notRegex(String(refused?.message), /permission denied/);
  // a valid certificate of a user that does not exist reads nothing
  await mesh.issue('stranger', remoteReaderUser('c9'));
  await t.throwsAsync(client(t, mesh, 'stranger').get(NODE_KEY).string());
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref(),
    ),
  ]);
}
