// Where a typed map's bytes live: the kernel (through the native addon) or memory (the fake used
// by control-plane unit tests). Both speak raw key/value Buffers, exactly as the codecs encode them.
import { nativeAddon, UpdateFlags, type MapInfo } from '../native/index.ts';

export interface MapBackend {
  /** kernel fd, or -1 in memory */
  readonly fd: number;
  info(): MapInfo;
  lookup(key: Buffer, out: Buffer): boolean;
  update(key: Buffer, value: Buffer, flags: number): void;
  delete(key: Buffer): boolean;
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number): number;
  deleteBatch(keys: Buffer, count: number): number;
  nextKey(key: Buffer | null, out: Buffer): boolean;
}

export function kernelBackend(fd: number): MapBackend {
  const addon = nativeAddon();
  return {
    fd,
    info: () => addon.mapInfo(fd),
    lookup: (k, out) => addon.mapLookup(fd, k, out),
    update: (k, v, flags) => addon.mapUpdate(fd, k, v, flags),
    delete: (k) => addon.mapDelete(fd, k),
    updateBatch: (ks, vs, n, flags) => addon.mapUpdateBatch(fd, ks, vs, n, flags),
    deleteBatch: (ks, n) => addon.mapDeleteBatch(fd, ks, n),
    nextKey: (k, out) => addon.mapNextKey(fd, k, out),
  };
}

function mapError(code: string, errno: number, op: string): Error {
  return Object.assign(new Error(`${op} failed: ${code}`), { code, errno, op });
}

/** Exact-match storage with the kernel's update-flag and error semantics (no LPM matching). */
export function memoryBackend(info: MapInfo): MapBackend {
  const rows = new Map<string, { key: Buffer; value: Buffer }>();
  const update = (key: Buffer, value: Buffer, flags: number): void => {
    const id = key.toString('hex');
    if (flags === UpdateFlags.NOEXIST && rows.has(id))
      throw mapError('EEXIST', 17, 'bpf_map_update_elem');
    if (flags === UpdateFlags.EXIST && !rows.has(id))
      throw mapError('ENOENT', 2, 'bpf_map_update_elem');
    if (!rows.has(id) && rows.size >= info.maxEntries)
      throw mapError('E2BIG', 7, 'bpf_map_update_elem');
    rows.set(id, { key: Buffer.from(key), value: Buffer.from(value) });
  };
  return {
    fd: -1,
    info: () => ({ ...info }),
    lookup: (key, out) => {
      const row = rows.get(key.toString('hex'));
      row?.value.copy(out);
      return row !== undefined;
    },
    update,
    delete: (key) => rows.delete(key.toString('hex')),
    updateBatch: (keys, values, n, flags) => {
      const ks = keys.length / n;
      const vs = values.length / n;
      for (let i = 0; i < n; i++)
        update(keys.subarray(i * ks, (i + 1) * ks), values.subarray(i * vs, (i + 1) * vs), flags);
      return n;
    },
    deleteBatch: (keys, n) => {
      const ks = keys.length / n;
      let deleted = 0;
      for (let i = 0; i < n; i++)
        if (rows.delete(keys.subarray(i * ks, (i + 1) * ks).toString('hex'))) deleted++;
      return deleted;
    },
    nextKey: (key, out) => {
      const ids = [...rows.keys()];
      const at = key === null ? -1 : ids.indexOf(key.toString('hex'));
      const next = ids[at + 1];
      if (next === undefined) return false;
      rows.get(next)!.key.copy(out);
      return true;
    },
  };
}
