import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readKeyPair, writeKeyPair } from './files.ts';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  remoteReaderUser,
  WRITER_USER,
} from './issue.ts';
import { CertError } from './keys.ts';

const ca = await createMeshCa({ commonName: 'test-mesh-ca' });

test('the mesh CA is a self-signed CA certificate', (t) => {
  const c = new X509Certificate(ca.certPem);
  t.true(c.ca);
  t.true(c.verify(c.publicKey));
  t.is(c.subject, 'CN=test-mesh-ca\nO=isthmus');
  t.is(c.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
});

test('server certificate: chains to the CA, carries the requested SANs, serverAuth', async (t) => {
  const s = await issueServerCertificate(ca, {
    cluster: 'c1',
    ips: ['172.18.0.10', 'fd00::10'],
    dnsNames: ['mesh-etcd.c1.isthmus.local'],
    validity: { days: 30 },
  });
  const caCert = new X509Certificate(ca.certPem);
  const c = new X509Certificate(s.certPem);
  t.true(c.verify(caCert.publicKey), 'issuer signature verifies');
  t.truthy(c.checkIssued(caCert));
  t.false(c.ca);
  t.is(
    c.subjectAltName,
    'DNS:mesh-etcd.c1.isthmus.local, IP Address:172.18.0.10, IP Address:FD00:0:0:0:0:0:0:10',
  );
  t.truthy(c.checkIP('172.18.0.10'));
  t.truthy(c.checkHost('mesh-etcd.c1.isthmus.local'));
  t.is(c.checkIP('172.18.0.11'), undefined);
  t.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  const days = (Date.parse(c.validTo) - Date.now()) / 86400_000;
  t.true(days > 29.9 && days <= 30, `valid for ${days} days`);
  t.true(Date.parse(c.validFrom) <= Date.now());
});

test('a certificate from another CA does not verify against the mesh CA', async (t) => {
  const other = await createMeshCa({ commonName: 'test-mesh-ca' });
  const c = new X509Certificate(
    (await issueClientCertificate(other, { user: 'remote-c2' })).certPem,
  );
  t.false(c.verify(new X509Certificate(ca.certPem).publicKey));
});

test('client certificates: CN is the etcd user, clientAuth only', async (t) => {
  for (const user of [remoteReaderUser('c2'), WRITER_USER]) {
    const c = new X509Certificate((await issueClientCertificate(ca, { user })).certPem);
    t.is(c.subject, `CN=${user}\nO=isthmus`);
    t.deepEqual(c.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    t.true(c.verify(new X509Certificate(ca.certPem).publicKey));
  }
  t.is(remoteReaderUser('c2'), 'remote-c2');
});

test('expiry is configurable, including an explicit (expired) window', async (t) => {
  const notBefore = new Date(Date.now() - 3 * 86400_000);
  const notAfter = new Date(Date.now() - 86400_000);
  const c = new X509Certificate(
    (await issueClientCertificate(ca, { user: 'old', validity: { notBefore, notAfter } })).certPem,
  );
  t.true(Date.parse(c.validTo) < Date.now());
});

test('bad requests fail with stable codes', async (t) => {
  await t.throwsAsync(issueServerCertificate(ca, { cluster: 'c1', ips: ['10.0.0.300'] }), {
    instanceOf: CertError,
    message: /not an IP/,
  });
  await t.throwsAsync(issueServerCertificate(ca, { cluster: 'c1' }), {
    instanceOf: CertError,
    message: /at least one/,
  });
  await t.throwsAsync(issueServerCertificate(ca, { cluster: 'c1', dnsNames: ['bad name'] }), {
    instanceOf: CertError,
  });
  await t.throwsAsync(issueClientCertificate(ca, { user: 'a,b=c' }), {
    instanceOf: CertError,
    message: /common name/,
  });
  await t.throwsAsync(issueClientCertificate(ca, { user: 'x', validity: { days: 0 } }), {
    instanceOf: CertError,
  });
  const e = await t.throwsAsync(issueClientCertificate({ ...ca, keyPem: 'nope' }, { user: 'x' }));
  t.is((e as CertError).code, 'ERR_CERT_KEY');
});

test('PEM files: keys 0600, certificates 0644, read back identically', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = await writeKeyPair(join(dir, 'sub'), 'ca', ca);
  t.is((await stat(paths.keyPath)).mode & 0o777, 0o600);
  t.is((await stat(paths.certPath)).mode & 0o777, 0o644);
  t.is(await readFile(paths.keyPath, 'utf8'), ca.keyPem);
  t.deepEqual(await readKeyPair(join(dir, 'sub'), 'ca'), ca);
  const e = await t.throwsAsync(readKeyPair(join(dir, 'missing'), 'ca'));
  t.is((e as CertError).code, 'ERR_CERT_READ');
});
