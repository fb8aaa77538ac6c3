// The rotation record a restarted agent resumes from (active.json): parsing and atomic writes.
import test from 'ava';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wgRunDir } from './device.ts';
import { readRotationState, writeRotationState } from './rotation.ts';
import { WG_PRIMARY, WG_SECONDARY } from './types.ts';

async function stateDir(t: { teardown(fn: () => Promise<void>): void }, record?: string) {
  const dir = await mkdtemp(join(tmpdir(), 'h22rs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  if (record !== undefined) {
    await writeRotationState(dir, { active: WG_PRIMARY }); // creates the directory's file
    await writeFile(join(wgRunDir(dir), 'active.json'), record);
  }
  return dir;
}

test('no record: the primary device alone', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'h22rs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.deepEqual(await readRotationState(dir), { active: WG_PRIMARY });
});

test('each step reads back as written, mode 0600', async (t) => {
  const dir = await stateDir(t, '{}');
  for (const s of [
    { active: WG_PRIMARY, next: WG_SECONDARY },
    { active: WG_SECONDARY, retiring: WG_PRIMARY },
    { active: WG_SECONDARY },
    { active: WG_SECONDARY, next: WG_PRIMARY },
  ]) {
    await writeRotationState(dir, s);
    t.deepEqual(await readRotationState(dir), s);
  }
  t.is((await stat(join(wgRunDir(dir), 'active.json'))).mode & 0o777, 0o600);
  t.deepEqual(JSON.parse(await readFile(join(wgRunDir(dir), 'active.json'), 'utf8')), {
    ifname: WG_SECONDARY.ifname,
    next: WG_PRIMARY.ifname,
  });
});

test('the old format (ifname only) is the active slot with no rotation', async (t) => {
  const dir = await stateDir(t, '{"ifname":"isthmus_wg1"}\n');
  t.deepEqual(await readRotationState(dir), { active: WG_SECONDARY });
});

test('a record naming the active slot as next or retiring, or unknown devices, means no rotation', async (t) => {
  for (const [record, want] of [
    ['{"ifname":"isthmus_wg0","next":"isthmus_wg0"}', { active: WG_PRIMARY }],
    ['{"ifname":"isthmus_wg1","retiring":"isthmus_wg1"}', { active: WG_SECONDARY }],
    ['{"ifname":"eth0","next":"isthmus_wg1"}', { active: WG_PRIMARY, next: WG_SECONDARY }],
    ['{"ifname":"isthmus_wg0","next":"bogus"}', { active: WG_PRIMARY }],
    ['not json', { active: WG_PRIMARY }],
  ] as const) {
    const dir = await stateDir(t, record);
    t.deepEqual(await readRotationState(dir), want, record);
  }
});
