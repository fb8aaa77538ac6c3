// Typed facade over the native addon (agent/native/src/*.cc). Every function throws a NativeError
// (errno, code like 'ENOENT', op naming the failed libbpf call or syscall) on failure.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface NativeError extends Error {
  errno: number;
  code: string;
  op: string;
}

export type TcAttachPoint = 'ingress' | 'egress';

export interface MapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

export interface ProgInfo {
  id: number;
  type: number;
  name: string;
}

export interface NativeAddon {
  /** Opens and loads a BPF object; maps marked LIBBPF_PIN_BY_NAME are reused from, or pinned
   * under, pinRoot ('' = no pinning at all: private maps). Returns an object handle. */
  objectOpen(path: string, pinRoot: string): number;
  objectClose(handle: number): boolean;
  objectContents(handle: number): { programs: string[]; maps: string[] };
  programFd(handle: number, name: string): number;
  mapFd(handle: number, name: string): number;
  mapInfo(fd: number): MapInfo;
  progInfo(fd: number): ProgInfo;
  objPin(fd: number, path: string): void;
  objGet(path: string): number;
  closeFd(fd: number): void;
  possibleCpus(): number;

  /** false when the key is absent; value is filled in place */
  mapLookup(fd: number, key: Buffer, value: Buffer): boolean;
  mapUpdate(fd: number, key: Buffer, value: Buffer, flags?: number): void;
  /** false when the key was absent */
  mapDelete(fd: number, key: Buffer): boolean;
  /** count records back to back in keys and values; kernel batch op where the map type has it */
  mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, flags?: number): number;
  /** returns how many keys existed and were deleted */
  mapDeleteBatch(fd: number, keys: Buffer, count: number): number;
  /** key null = first key; false when there is no next key */
  mapNextKey(fd: number, key: Buffer | null, next: Buffer): boolean;

  // tc calls take an optional network namespace path (e.g. /run/netns/NAME) to act in; the
  // calling thread returns to its own namespace before the call returns.
  /** creates the clsact qdisc; false when it already existed */
  tcEnsureClsact(ifindex: number, netns?: string): boolean;
  /** returns the attached program id; replace = atomic swap of the filter at handle/priority */
  tcAttach(
    ifindex: number,
    point: TcAttachPoint,
    progFd: number,
    handle: number,
    priority: number,
    replace: boolean,
    netns?: string,
  ): number;
  /** program id at handle/priority, 0 when none */
  tcQuery(
    ifindex: number,
    point: TcAttachPoint,
    handle: number,
    priority: number,
    netns?: string,
  ): number;
  tcDetach(
    ifindex: number,
    point: TcAttachPoint,
    handle: number,
    priority: number,
    netns?: string,
  ): boolean;

  /** records arrive in batches from the event loop; keepAlive = the consumer holds the loop open */
  ringbufOpen(mapFd: number, onRecords: (records: Buffer[]) => void, keepAlive: boolean): number;
  /** consumes what is pending now and delivers it synchronously; returns the record count */
  ringbufDrain(id: number): number;
  ringbufClose(id: number): boolean;
}

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST update flags (linux/bpf.h). */
export const UpdateFlags = { ANY: 0, NOEXIST: 1, EXIST: 2 } as const;

const here = dirname(fileURLToPath(import.meta.url));
// Source tree: agent/native/index.ts; compiled: dist/agent/native/index.js.
const candidates = [
  join(here, 'build/Release/isthmus_native.node'),
  join(here, '../../../agent/native/build/Release/isthmus_native.node'),
];

let loaded: NativeAddon | undefined;

/** Loads the addon once. Throws code ENOADDON when it was not built. */
export function nativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = candidates.find((p) => existsSync(p));
  if (!path) {
    throw Object.assign(
      new Error(
        `native addon not built (looked for ${candidates.join(', ')}): run 'bash scripts/setup.sh --build-only'`,
      ),
      { code: 'ENOADDON', errno: 0, op: 'load' },
    );
  }
  loaded = createRequire(import.meta.url)(path) as NativeAddon;
  return loaded;
}

export function isNativeError(e: unknown): e is NativeError {
  return (
    e instanceof Error &&
    typeof (e as NativeError).op === 'string' &&
    typeof (e as NativeError).code === 'string'
  );
}
