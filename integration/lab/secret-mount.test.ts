// The lab's Secret "mount" into a bundle directory: one file per key, atomic, removal follows.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountInto } from './secret-mount.ts';

test('mountInto: keys become files, removed keys remove files, other names stay', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'h23-mount-')), 'clustermesh');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  t.is(await mountInto(dir, { c2: 'b2', c3: 'b3' }), 2);
  t.deepEqual(readdirSync(dir).sort(), ['c2', 'c3']);
  t.is(statSync(join(dir, 'c2')).mode & 0o777, 0o600);
  t.is(await mountInto(dir, { c2: 'b2', c3: 'b3' }), 0, 'unchanged: nothing written');
  writeFileSync(join(dir, 'c3.abc123.tmp'), 'in flight');
  t.is(await mountInto(dir, { c2: 'b2-new', '../evil': 'x' }), 2);
  t.is(readFileSync(join(dir, 'c2'), 'utf8'), 'b2-new');
  t.deepEqual(readdirSync(dir).sort(), ['c2', 'c3.abc123.tmp']);
  t.is(await mountInto(dir, {}), 1);
  t.deepEqual(readdirSync(dir), ['c3.abc123.tmp']);
});
