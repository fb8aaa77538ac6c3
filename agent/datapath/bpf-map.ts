// A BPF map with a codec: typed get/set/delete/iterate over raw key/value Buffers held by the
// kernel (through the addon) or, in unit tests, in memory.
import { UpdateFlags, type MapInfo } from '../native/index.ts';
import { kernelBackend, type MapBackend } from './map-backend.ts';

export interface Codec<K, V> {
  keySize: number;
  /** bytes per value as the syscall sees it (percpu maps: per-CPU slots) */
  valueSize: number;
  encodeKey(key: K, out: Buffer): void;
  decodeKey(buf: Buffer): K;
  encodeValue(value: V, out: Buffer): void;
  decodeValue(buf: Buffer): V;
}

export class BpfMap<K, V> {
  readonly backend: MapBackend;
  readonly codec: Codec<K, V>;
  /** a kernel fd, or a MapBackend (memory, for tests) */
  constructor(where: number | MapBackend, codec: Codec<K, V>) {
    this.backend = typeof where === 'number' ? kernelBackend(where) : where;
    this.codec = codec;
  }

  /** kernel fd (-1 in memory) */
  get fd(): number {
    return this.backend.fd;
  }

  info(): MapInfo {
    return this.backend.info();
  }

  get(key: K): V | undefined {
    const k = this.key(key);
    const v = Buffer.alloc(this.codec.valueSize);
    return this.backend.lookup(k, v) ? this.codec.decodeValue(v) : undefined;
  }

  set(key: K, value: V, flags: number = UpdateFlags.ANY): void {
    this.backend.update(this.key(key), this.value(value), flags);
  }

  /** false when the key was not there (not an error: deletes are idempotent) */
  delete(key: K): boolean {
    return this.backend.delete(this.key(key));
  }

  /** One addon call for all entries (kernel batch op where the map type supports it). */
  setMany(entries: ReadonlyArray<readonly [K, V]>, flags: number = UpdateFlags.ANY): number {
    if (entries.length === 0) return 0;
    const { keySize, valueSize } = this.codec;
    const keys = Buffer.alloc(keySize * entries.length);
    const values = Buffer.alloc(valueSize * entries.length);
    entries.forEach(([k, v], i) => {
      this.codec.encodeKey(k, keys.subarray(i * keySize, (i + 1) * keySize));
      this.codec.encodeValue(v, values.subarray(i * valueSize, (i + 1) * valueSize));
    });
    return this.backend.updateBatch(keys, values, entries.length, flags);
  }

  deleteMany(keys: ReadonlyArray<K>): number {
    if (keys.length === 0) return 0;
    const size = this.codec.keySize;
    const buf = Buffer.alloc(size * keys.length);
    keys.forEach((k, i) => this.codec.encodeKey(k, buf.subarray(i * size, (i + 1) * size)));
    return this.backend.deleteBatch(buf, keys.length);
  }

  /** All entries. Entries changed concurrently may be missed or seen twice (kernel semantics). */
  *entries(): Generator<[K, V]> {
    let prev: Buffer | null = null;
    const value = Buffer.alloc(this.codec.valueSize);
    for (;;) {
      const next = Buffer.alloc(this.codec.keySize);
      if (!this.backend.nextKey(prev, next)) return;
      if (this.backend.lookup(next, value))
        yield [this.codec.decodeKey(next), this.codec.decodeValue(value)];
      prev = next;
    }
  }

  *values(): Generator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  private key(key: K): Buffer {
    const b = Buffer.alloc(this.codec.keySize);
    this.codec.encodeKey(key, b);
    return b;
  }

  private value(value: V): Buffer {
    const b = Buffer.alloc(this.codec.valueSize);
    this.codec.encodeValue(value, b);
    return b;
  }
}
