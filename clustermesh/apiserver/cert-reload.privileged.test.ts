// Certificates picked up without restart (issue 5 item 3). The clustermesh API server's client
// certificate for its mesh etcd is replaced on disk by a new one of the same CA while it runs; the
// old one then expires and the mesh etcd restarts (every connection is made anew): the server keeps
// mirroring with the new certificate, while a client still holding the old one is refused — so
// without the reload the test fails. Unchanged keys are never rewritten or deleted. Also: the mesh
// etcd (3.4) itself serves a replaced server certificate on the next handshake, no restart.
import 'reflect-metadata';
import test from 'ava';
import { Etcd3 } from 'etcd3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  writeKeyPair,
  WRITER_USER,
} from '../../certs/index.ts';
import { startEtcd, type EtcdOptions } from '../../integration/etcd/index.ts';
import { ipcacheKey, clusterConfigKey } from '../kvstore/index.ts';
import { ROOT_USER, setupMeshEtcdAuth } from '../etcd-auth.ts';
import { MeshEtcdClient } from './mesh-etcd-client.ts';
import { ClusterMeshApiServer } from './server.ts';
import { MESH_ETCD_HOST, securedEtcdOptions, startMirrorFixture } from './test-support.ts';
import { CLUSTER, createNamespace, defs, endpoint, eventually } from './test-objects.ts';

/** The old writer certificate lives this long: enough to start, short enough to wait out. */
const OLD_CERT_MS = 15_000;

async function modRevision(root: Etcd3, key: string): Promise<string | undefined> {
  const res = await root.kv.range({ key: Buffer.from(key) });
  return res.kvs[0]?.mod_revision;
}

test.serial('a replaced writer certificate is used for new connections, no restart', async (t) => {
  const f = await startMirrorFixture(t, 'h23crt', CLUSTER);
  const dir = mkdtempSync('/dev/shm/h23crt-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await createMeshCa();
  await writeKeyPair(dir, 'ca', ca);
  await writeKeyPair(
    dir,
    'server',
    await issueServerCertificate(ca, { cluster: 'c1', dnsNames: [MESH_ETCD_HOST] }),
  );
  await writeKeyPair(dir, ROOT_USER, await issueClientCertificate(ca, { user: ROOT_USER }));
  const file = (n: string) => join(dir, n);
  const etcdOptions: EtcdOptions = {
    ...securedEtcdOptions(dir, `h23crt-${randomBytes(3).toString('hex')}`, f.ns.name),
    baseDir: join(dir, 'etcd'),
  };
  let etcd = await startEtcd(etcdOptions);
  t.teardown(() => etcd.stop());
  let root = etcd.client();
  t.teardown(() => root.close());
  await setupMeshEtcdAuth(root);

  const old = await issueClientCertificate(ca, {
    user: WRITER_USER,
    validity: { notAfter: new Date(Date.now() + OLD_CERT_MS) },
  });
  await writeKeyPair(dir, 'writer', old);
  const files = {
    caPath: file('ca.crt'),
    certPath: file('writer.crt'),
    keyPath: file('writer.key'),
  };
  const client = new MeshEtcdClient({
    hosts: etcd.socketEndpoint,
    files,
    serverName: MESH_ETCD_HOST,
    pollMs: 200,
  });
  const server = new ClusterMeshApiServer({
    cluster: CLUSTER,
    kube: f.api,
    kv: await client.start(),
  });
  t.teardown(async () => {
    await server.stop();
    client.stop();
  });
  await createNamespace(f.api, 'prod');
  await f.api.create(defs.CiliumEndpoints, endpoint('db-0', '10.1.1.7', 65537, '172.18.0.5'));
  await server.start();
  await server.synced;
  const before = await modRevision(root, ipcacheKey('10.1.1.7'));
  t.truthy(before, 'mirrored with the old certificate');
  const configBefore = await modRevision(root, clusterConfigKey('c1'));

  await writeKeyPair(dir, 'writer', await issueClientCertificate(ca, { user: WRITER_USER }));
  await eventually('the new certificate adopted', async () =>
    client.reloads >= 1 ? true : undefined,
  );
  t.true(client.notAfter.getTime() > Date.now() + 86_400_000, 'the long-lived one is in use');

  // wait the old certificate out, then make every client connect again
  const expired = old.certPem;
  const wait = new X509Certificate(expired).validTo;
  await new Promise((r) =>
    setTimeout(r, Math.max(0, new Date(wait).getTime() - Date.now() + 1500)),
  );
  root.close();
  process.kill(etcd.pid, 'SIGTERM'); // (graceful: it removes its sockets)
  await eventually('the mesh etcd gone', async () => {
    try {
      process.kill(etcd.pid, 0);
      return undefined;
    } catch {
      return true;
    }
  });
  etcd = await startEtcd(etcdOptions); // over the same data
  root = etcd.client();

  await f.api.create(defs.CiliumEndpoints, endpoint('db-1', '10.1.1.8', 65537, '172.18.0.5'));
  await eventually(
    'the new endpoint mirrored after the restart',
    async () => ((await root.get(ipcacheKey('10.1.1.8')).string()) ? true : undefined),
    30_000,
  );
  t.is(
    await modRevision(root, ipcacheKey('10.1.1.7')),
    before,
    'the unchanged key was not rewritten',
  );
  t.is(await modRevision(root, clusterConfigKey('c1')), configBefore, 'nor the cluster config');

  // the control: the old certificate is refused now, so only the reload kept the mirror writing
  const stale = new Etcd3({
    hosts: etcd.socketEndpoint,
    credentials: {
      rootCertificate: Buffer.from(ca.certPem),
      certChain: Buffer.from(old.certPem),
      privateKey: Buffer.from(old.keyPem),
    },
    grpcOptions: { 'grpc.ssl_target_name_override': MESH_ETCD_HOST },
  });
  t.teardown(() => stale.close());
  await t.throwsAsync(
    stale.get(clusterConfigKey('c1')).string(),
    undefined,
    'expired certificate refused',
  );
});

/** The serial of the certificate the mesh etcd presents on a new TLS handshake (unix socket). */
function servedSerial(socketPath: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { path: socketPath, ca: caPem, servername: MESH_ETCD_HOST, ALPNProtocols: ['h2'] },
      () => {
        const serial = s.getPeerCertificate().serialNumber;
        s.destroy();
        resolve(serial);
      },
    );
    s.once('error', reject);
  });
}

test.serial(
  'the mesh etcd serves a replaced server certificate on the next handshake',
  async (t) => {
    const f = await startMirrorFixture(t, 'h23srv', CLUSTER);
    const p = (n: string) => join(f.mesh.certDir, n);
    const caPem = readFileSync(p('ca.crt'), 'utf8');
    const first = await servedSerial(f.mesh.etcd.socketPath, caPem);
    t.is(first, new X509Certificate(readFileSync(p('server.crt'))).serialNumber);
    const ca = { certPem: caPem, keyPem: readFileSync(p('ca.key'), 'utf8') };
    const next = await issueServerCertificate(ca, { cluster: 'c1', dnsNames: [MESH_ETCD_HOST] });
    await writeKeyPair(f.mesh.certDir, 'server', next);
    const want = new X509Certificate(next.certPem).serialNumber;
    t.not(want, first);
    t.is(await servedSerial(f.mesh.etcd.socketPath, caPem), want, 'new handshake, new certificate');
    const fresh = f.mesh.clientAs(ROOT_USER); // a new connection verifies the new certificate
    t.teardown(() => fresh.close());
    await fresh.put('cilium/h23-probe').value('x');
    t.is(await fresh.get('cilium/h23-probe').string(), 'x');
  },
);
