// Drives `isthmus certs` as a user would: CA, server and client certificates, bundle, verify.
import test from 'ava';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

function isthmus(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', MAIN, ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

test('certs ca/server/client/bundle/verify-bundle work end to end, and refusals exit 3', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = join(dir, 'ca');
  t.is((await isthmus('certs', 'ca', '--out', ca)).code, 0);
  t.is((await isthmus('certs', 'ca', '--out', ca)).code, 2, 'an existing CA is not overwritten');

  const server = await isthmus(
    'certs',
    'server',
    '--ca-dir',
    ca,
    '--cluster',
    'c1',
    '--ip',
    '172.18.0.10',
    '--dns',
    'etcd.c1',
  );
  t.is(server.code, 0, server.stderr);
  const cert = new X509Certificate(await readFile(JSON.parse(server.stdout).certPath));
  t.is(cert.subjectAltName, 'DNS:etcd.c1, IP Address:172.18.0.10');
  t.true(cert.verify(new X509Certificate(await readFile(join(ca, 'ca.crt'))).publicKey));

  const client = await isthmus('certs', 'client', '--ca-dir', ca, '--cluster', 'c2');
  t.is(client.code, 0, client.stderr);
  t.is(
    new X509Certificate(await readFile(JSON.parse(client.stdout).certPath)).subject,
    'CN=remote-c2\nO=isthmus',
  );
  t.is((await stat(JSON.parse(client.stdout).keyPath)).mode & 0o777, 0o600);

  const file = join(dir, 'c1.bundle');
  const b = await isthmus(
    'certs',
    'bundle',
    '--ca-dir',
    ca,
    '--cluster',
    'c1',
    '--id',
    '1',
    '--endpoints',
    'https://172.18.0.10:2379',
    '--reader',
    'c2',
    '--out',
    file,
  );
  t.is(b.code, 0, b.stderr);
  t.is((await stat(file)).mode & 0o777, 0o600);

  const ok = await isthmus('certs', 'verify-bundle', file, '--ca-dir', ca);
  t.is(ok.code, 0, ok.stderr);
  t.like(JSON.parse(ok.stdout), { ok: true, cluster: 'c1', clusterId: 1, user: 'remote-c2' });
  t.false(ok.stdout.includes('PRIVATE KEY'), 'the key is not printed');

  const [h, p, s] = (await readFile(file, 'utf8')).trim().split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  payload.bundle.clusterId = 7;
  await writeFile(file, `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`);
  const tampered = await isthmus('certs', 'verify-bundle', file, '--ca-dir', ca);
  t.is(tampered.code, 3);
  t.regex(tampered.stderr, /ERR_BUNDLE_TAMPERED/);
});
