// mTLS handshakes with the mesh certificates, over a UNIX socket (no TCP anywhere): the server
// plays the mesh etcd (requires a client certificate from the mesh CA), clients present various
// certificates. Also shows a server adopting new certificates from CertificateSource live.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { keyPairPaths, writeKeyPair } from './files.ts';
import { createMeshCa, issueClientCertificate, issueServerCertificate } from './issue.ts';
import type { KeyPairPem } from './keys.ts';
import { CertificateSource } from './source.ts';

const ca = await createMeshCa();
const otherCa = await createMeshCa();
const SERVER_NAME = 'mesh-etcd.c1.isthmus.local';
const serverPair = await issueServerCertificate(ca, {
  cluster: 'c1',
  dnsNames: [SERVER_NAME],
  ips: ['172.18.0.10'],
});

interface Server {
  path: string;
  server: tls.Server;
}

/**
 * `enforce` (the mesh etcd's setting) refuses unauthorized clients in the handshake; without it
 * the server answers `refused <reason>`, so a test can check why OpenSSL refuses a certificate.
 */
async function startServer(
  t: import('ava').ExecutionContext,
  pair: KeyPairPem = serverPair,
  enforce = true,
): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-mtls-'));
  const path = join(dir, 'etcd.sock');
  const options = {
    ca: ca.certPem,
    cert: pair.certPem,
    key: pair.keyPem,
    requestCert: true,
    rejectUnauthorized: enforce,
  };
  const server = tls.createServer(options, (socket) => {
    const cn = socket.getPeerX509Certificate()?.subject.match(/CN=([^\n]+)/)?.[1];
    socket.end(
      socket.authorized ? `hello ${cn}\n` : `refused ${String(socket.authorizationError)}\n`,
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, resolve));
  t.teardown(async () => {
    await new Promise((resolve) => server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });
  return { path, server };
}

/** Refused by the enforcing server, and for `reason` according to OpenSSL. */
async function assertRefused(
  t: import('ava').ExecutionContext,
  client: KeyPairPem | null,
  reason: RegExp,
) {
  const enforcing = await startServer(t);
  const o = await connect(enforcing.path, client);
  t.false(o.accepted, o.accepted ? `accepted: ${o.reply}` : '');
  const diagnostic = await startServer(t, serverPair, false);
  const d = await connect(diagnostic.path, client);
  if (!d.accepted) return t.fail(`diagnostic server failed: ${d.error}`);
  t.regex(d.reply, reason);
}

type Outcome =
  | { accepted: true; reply: string; serverCert: X509Certificate }
  | { accepted: false; error: string };

/** Connects, and reports whether the server answered (accepted) or the connection failed. */
function connect(
  path: string,
  client: KeyPairPem | null,
  trustCa = ca.certPem,
  servername = SERVER_NAME,
): Promise<Outcome> {
  return new Promise((resolve) => {
    let reply = '';
    const socket = tls.connect({
      path,
      ca: trustCa,
      servername,
      ...(client ? { cert: client.certPem, key: client.keyPem } : {}),
    });
    const timer = setTimeout(() => finish({ accepted: false, error: 'timeout' }), 5000);
    function finish(o: Outcome) {
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    }
    socket.on('data', (d) => (reply += d));
    socket.on('end', () =>
      reply
        ? finish({ accepted: true, reply, serverCert: socket.getPeerX509Certificate()! })
        : finish({ accepted: false, error: 'closed without reply' }),
    );
    socket.on('error', (e) =>
      finish({ accepted: false, error: (e as NodeJS.ErrnoException).code ?? e.message }),
    );
  });
}

test('a client with a mesh CA client certificate is accepted, as its etcd user', async (t) => {
  const { path } = await startServer(t);
  const o = await connect(path, await issueClientCertificate(ca, { user: 'remote-c2' }));
  if (!o.accepted) return t.fail(o.error);
  t.is(o.reply, 'hello remote-c2\n');
});

test('a client certificate from another CA is refused', async (t) => {
  await assertRefused(
    t,
    await issueClientCertificate(otherCa, { user: 'remote-c2' }),
    /^refused UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
  );
});

test('an expired client certificate is refused', async (t) => {
  const expired = await issueClientCertificate(ca, {
    user: 'remote-c2',
    validity: {
      notBefore: new Date(Date.now() - 2 * 86400_000),
      notAfter: new Date(Date.now() - 86400_000),
    },
  });
  await assertRefused(t, expired, /^refused CERT_HAS_EXPIRED/);
});

test('a client without a certificate is refused', async (t) => {
  await assertRefused(t, null, /^refused /);
});

test('the client refuses a server whose certificate lacks the dialled name, or comes from another CA', async (t) => {
  const { path } = await startServer(t);
  const client = await issueClientCertificate(ca, { user: 'remote-c2' });
  const wrongName = await connect(path, client, ca.certPem, 'other.example');
  t.false(wrongName.accepted);
  if (!wrongName.accepted) t.is(wrongName.error, 'ERR_TLS_CERT_ALTNAME_INVALID');
  const wrongCa = await connect(path, client, otherCa.certPem);
  t.false(wrongCa.accepted);
});

test('a server adopts a renewed certificate from CertificateSource without restarting', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-mtls-src-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeKeyPair(dir, 'ca', ca);
  const paths = await writeKeyPair(dir, 'server', serverPair);
  const source = new CertificateSource(
    { caPath: keyPairPaths(dir, 'ca').certPath, ...paths },
    { debounceMs: 20 },
  );
  await source.start();
  t.teardown(() => source.stop());
  const { path, server } = await startServer(t, {
    certPem: source.current().cert,
    keyPem: source.current().key,
  });
  source.onChange((m) => server.setSecureContext({ ca: m.ca, cert: m.cert, key: m.key }));

  const client = await issueClientCertificate(ca, { user: 'remote-c2' });
  const before = await connect(path, client);
  if (!before.accepted) return t.fail(before.error);
  const renewed = await issueServerCertificate(ca, { cluster: 'c1', dnsNames: [SERVER_NAME] });
  const changed = new Promise<void>((resolve) => source.onChange(() => resolve()));
  await writeKeyPair(dir, 'server', renewed);
  await changed;
  const after = await connect(path, client);
  if (!after.accepted) return t.fail(after.error);
  t.is(after.serverCert.serialNumber, new X509Certificate(renewed.certPem).serialNumber);
  t.not(after.serverCert.serialNumber, before.serverCert.serialNumber);
});
