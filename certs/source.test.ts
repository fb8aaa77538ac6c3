import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyPairPaths, writeFileAtomic, writeKeyPair } from './files.ts';
import { createMeshCa, issueClientCertificate } from './issue.ts';
import type { CertError } from './keys.ts';
import { CertificateSource, type TlsMaterial } from './source.ts';

const ca = await createMeshCa();

async function setup(t: import('ava').ExecutionContext, pollMs = 60_000) {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-source-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeKeyPair(dir, 'ca', ca);
  const first = await issueClientCertificate(ca, { user: 'remote-c2' });
  const paths = await writeKeyPair(dir, 'client', first);
  const errors: CertError[] = [];
  const source = new CertificateSource(
    { caPath: keyPairPaths(dir, 'ca').certPath, certPath: paths.certPath, keyPath: paths.keyPath },
    { pollMs, debounceMs: 20, onError: (e) => errors.push(e) },
  );
  await source.start();
  t.teardown(() => source.stop());
  return { dir, first, source, errors };
}

function nextChange(source: CertificateSource, timeoutMs = 5000): Promise<TlsMaterial> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no change within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const off = source.onChange((m) => {
      clearTimeout(timer);
      off();
      resolve(m);
    });
  });
}

test('the watcher picks up a replaced certificate and key without a restart', async (t) => {
  const { dir, first, source } = await setup(t);
  t.is(source.current().cert, first.certPem);
  t.is(source.current().version, 1);
  const second = await issueClientCertificate(ca, { user: 'remote-c2' });
  const changed = nextChange(source);
  await writeKeyPair(dir, 'client', second);
  const m = await changed;
  t.is(m.cert, second.certPem);
  t.is(m.key, second.keyPem);
  t.is(source.current().cert, second.certPem);
  t.true(source.current().version > 1);
});

test('a half-done rotation (certificate replaced, key not yet) keeps the previous set', async (t) => {
  const { dir, first, source, errors } = await setup(t);
  const second = await issueClientCertificate(ca, { user: 'remote-c2' });
  const paths = keyPairPaths(dir, 'client');
  await writeFileAtomic(paths.certPath, second.certPem, 0o644);
  t.false(await source.reload());
  t.is(source.current().cert, first.certPem);
  t.is(errors.at(-1)?.code, 'ERR_CERT_INCONSISTENT');
  const changed = nextChange(source);
  await writeFileAtomic(paths.keyPath, second.keyPem, 0o600);
  t.is((await changed).cert, second.certPem);
});

test('the poll fallback adopts a change even without file events', async (t) => {
  const { dir, source } = await setup(t, 100);
  for (const w of (source as unknown as { watchers: { close(): void }[] }).watchers) w.close();
  const second = await issueClientCertificate(ca, { user: 'remote-c2' });
  const changed = nextChange(source);
  await writeKeyPair(dir, 'client', second);
  t.is((await changed).cert, second.certPem);
});

test('start refuses files that are not a consistent set', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-source-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const foreign = await issueClientCertificate(await createMeshCa(), { user: 'x' });
  await writeKeyPair(dir, 'ca', ca);
  const paths = await writeKeyPair(dir, 'client', foreign);
  const source = new CertificateSource({ caPath: keyPairPaths(dir, 'ca').certPath, ...paths });
  const e = await t.throwsAsync(source.start());
  t.is((e as CertError).code, 'ERR_CERT_INCONSISTENT');
  t.throws(() => source.current(), { message: /start/ });
});
