import test from 'ava';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { generateKey, isWgKey, loadOrCreateKey, publicKeyOf } from './keys.ts';
import { startTimeOf } from './device.ts';

test('generated keys match `wg pubkey`', (t) => {
  const k = generateKey();
  const wg = execFileSync('wg', ['pubkey'], { input: k.privateKey + '\n' })
    .toString()
    .trim();
  t.is(k.publicKey, wg);
  t.true(isWgKey(k.privateKey) && isWgKey(k.publicKey));
  t.is(publicKeyOf(k.privateKey), k.publicKey);
});

test('the key is created once with mode 0600 and read back unchanged', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'h12keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'wireguard', 'isthmus_wg0.key');
  const first = await loadOrCreateKey(path);
  t.is((await stat(path)).mode & 0o777, 0o600);
  const again = await loadOrCreateKey(path);
  t.deepEqual(again, first);
  t.is((await readFile(path, 'utf8')).trim(), first.privateKey);
});

test('a malformed key file is refused, not replaced', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'h12keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'k');
  await writeFile(path, 'not a key\n', { mode: 0o600 });
  const err = await t.throwsAsync(() => loadOrCreateKey(path));
  t.is((err as { code?: string }).code, 'ISTHMUS_WG_KEY');
  t.is(await readFile(path, 'utf8'), 'not a key\n');
});

test('start time is field 22 of /proc/<pid>/stat, also with spaces in the command', (t) => {
  const fields = Array.from({ length: 40 }, (_, i) => String(i + 3)).join(' ');
  t.is(startTimeOf(`123 (wire guard) ${fields}`), '22');
});
