// Addon failures surface as Errors with errno, code and op; maps work on raw Buffers.
import test from 'ava';
import { mkdirSync, rmdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { isNativeError, nativeAddon, UpdateFlags, type NativeError } from './index.ts';

const podObject = fileURLToPath(new URL('../../bpf/build/pod.o', import.meta.url));
const pinRoot = `/run/h1nat${randomBytes(3).toString('hex')}`;
let handle = 0;

test.before(() => {
  mkdirSync(pinRoot);
  const m = spawnSync('mount', ['-t', 'bpf', 'bpf', pinRoot], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount bpffs: ${m.stderr}`);
  handle = nativeAddon().objectOpen(podObject, pinRoot);
});

test.after.always(() => {
  if (handle) nativeAddon().objectClose(handle);
  spawnSync('umount', [pinRoot]);
  rmdirSync(pinRoot, { recursive: false });
});

function nativeThrows(
  t: import('ava').ExecutionContext,
  fn: () => unknown,
  code: string,
  op: string,
): void {
  const e = t.throws(fn) as NativeError;
  t.true(isNativeError(e), String(e));
  t.is(e.code, code);
  t.is(e.op, op);
  t.is(typeof e.errno, 'number');
}

test.serial('a missing object file is ENOENT from bpf_object__open_file', (t) => {
  nativeThrows(
    t,
    () => nativeAddon().objectOpen('/nonexistent/isthmus.o', ''),
    'ENOENT',
    'bpf_object__open_file',
  );
});

test.serial('a pin root outside bpffs fails the load with its reason', (t) => {
  const e = t.throws(() => nativeAddon().objectOpen(podObject, '/proc')) as NativeError;
  t.true(isNativeError(e));
  t.is(e.op, 'bpf_object__load');
  t.true(e.errno > 0);
});

test.serial('unknown program and map names are ENOENT', (t) => {
  nativeThrows(
    t,
    () => nativeAddon().programFd(handle, 'nope'),
    'ENOENT',
    'bpf_object__find_program_by_name',
  );
  nativeThrows(
    t,
    () => nativeAddon().mapFd(handle, 'nope'),
    'ENOENT',
    'bpf_object__find_map_by_name',
  );
});

test.serial('map operations on a bad fd are EBADF; NOEXIST on a present key is EEXIST', (t) => {
  nativeThrows(
    t,
    () => nativeAddon().mapUpdate(9999, Buffer.alloc(4), Buffer.alloc(4)),
    'EBADF',
    'bpf_map_update_elem',
  );
  const fd = nativeAddon().mapFd(handle, 'isth_endpts_v1');
  const key = Buffer.alloc(20, 7);
  const value = Buffer.alloc(16, 1);
  nativeAddon().mapUpdate(fd, key, value, UpdateFlags.NOEXIST);
  nativeThrows(
    t,
    () => nativeAddon().mapUpdate(fd, key, value, UpdateFlags.NOEXIST),
    'EEXIST',
    'bpf_map_update_elem',
  );
  const out = Buffer.alloc(16);
  t.true(nativeAddon().mapLookup(fd, key, out));
  t.deepEqual(out, value);
  t.true(nativeAddon().mapDelete(fd, key));
  t.false(nativeAddon().mapDelete(fd, key), 'deleting what is not there is not an error');
  t.false(nativeAddon().mapLookup(fd, key, out));
});

test.serial('batch update and iteration see every record', (t) => {
  const addon = nativeAddon();
  const fd = addon.mapFd(handle, 'isth_endpts_v1');
  const n = 1000;
  const keys = Buffer.alloc(20 * n);
  const values = Buffer.alloc(16 * n);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32BE(i, i * 20 + 4);
    values.writeUInt32LE(i, i * 16);
  }
  t.is(addon.mapUpdateBatch(fd, keys, values, n), n);
  let prev: Buffer | null = null;
  const seen = new Set<number>();
  for (;;) {
    const next = Buffer.alloc(20);
    if (!addon.mapNextKey(fd, prev, next)) break;
    seen.add(next.readUInt32BE(4));
    prev = next;
  }
  t.is(seen.size, n);
  t.is(addon.mapDeleteBatch(fd, keys, n), n);
  t.false(addon.mapNextKey(fd, null, Buffer.alloc(20)));
  nativeThrows(
    t,
    () => addon.mapUpdateBatch(fd, keys.subarray(0, 31), values.subarray(0, 32), 2),
    'EINVAL',
    'bpf_map_update_batch',
  );
});

test.serial('tc calls on a missing interface or namespace fail with their op', (t) => {
  nativeThrows(t, () => nativeAddon().tcEnsureClsact(987654), 'ENODEV', 'bpf_tc_hook_create');
  nativeThrows(
    t,
    () => nativeAddon().tcEnsureClsact(1, '/run/netns/h1-does-not-exist'),
    'ENOENT',
    'open netns',
  );
  const e = t.throws(() =>
    nativeAddon().tcAttach(1, 'sideways' as 'ingress', 0, 1, 1, false),
  ) as NativeError;
  t.is(e.code, 'EINVAL');
});

test.serial('bad argument types are TypeErrors with code EINVAL', (t) => {
  const e = t.throws(() =>
    nativeAddon().mapLookup('x' as unknown as number, Buffer.alloc(1), Buffer.alloc(1)),
  ) as NativeError;
  t.true(e instanceof TypeError);
  t.is(e.code, 'EINVAL');
});
