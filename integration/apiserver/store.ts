// Object storage in etcd laid out as kube-apiserver does: /registry/<resource>/<ns>/<name>,
// JSON values, resourceVersion = etcd mod revision, optimistic concurrency by transactions.
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { ResourceType } from './resources.ts';
import { alreadyExists, conflict, gone, notFound, ApiError } from './status.ts';

export type KubeObject = Record<string, unknown> & { metadata: ObjectMeta };
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [k: string]: unknown;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continueToken?: string;
}

export interface ListOptions {
  filter: (o: KubeObject) => boolean;
  limit?: number;
  continueToken?: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchSink {
  /** `previous` is the state before a MODIFIED/DELETED change (for selector transitions). */
  event(type: WatchEventType, obj: KubeObject, previous?: KubeObject): void;
  /** All events up to this revision were delivered. */
  progress(revision: number): void;
  /** The watch ended with an error (410 when history was compacted). */
  error(err: ApiError): void;
}

// Like kube-apiserver's GuaranteedUpdate: retry lost races until a deadline, with jitter.
const UPDATE_DEADLINE_MS = 10_000;
const retryPause = (attempt: number) =>
  attempt < 3
    ? Promise.resolve()
    : new Promise((r) => setTimeout(r, Math.random() * Math.min(50, attempt * 2)));

/** A key claimed alongside a create (e.g. a cluster IP) already belongs to another object. */
export class ClaimTakenError extends Error {
  constructor(readonly claims: string[]) {
    super(`already claimed: ${claims.join(', ')}`);
    this.name = 'ClaimTakenError';
  }
}

/** Keys read per etcd range request when listing. */
const LIST_CHUNK = 500;

export class ObjectStore {
  constructor(
    private readonly etcd: Etcd3,
    private readonly root = '/registry',
  ) {}

  /** Key of one object, or the prefix of a collection when name is undefined. */
  key(r: ResourceType, namespace: string | undefined, name?: string): string {
    const parts = [this.root, r.resource];
    if (r.namespaced && namespace !== undefined) parts.push(namespace);
    if (name === undefined) return parts.join('/') + '/';
    return [...parts, name].join('/');
  }

  async currentRevision(): Promise<number> {
    const res = await this.etcd.kv.range({
      key: Buffer.from(this.root),
      limit: 1,
      count_only: true,
    } as never);
    return Number(res.header.revision);
  }

  async get(r: ResourceType, namespace: string | undefined, name: string): Promise<KubeObject> {
    const res = await this.etcd.kv.range({ key: Buffer.from(this.key(r, namespace, name)) });
    const kv = res.kvs[0];
    if (!kv) throw notFound(r, name);
    return decode(kv);
  }

  async list(
    r: ResourceType,
    namespace: string | undefined,
    opts: ListOptions,
  ): Promise<ListResult> {
    const prefix = this.key(r, namespace);
    let start = prefix;
    let revision: number | undefined;
    if (opts.continueToken) ({ start, revision } = decodeContinue(opts.continueToken, prefix));
    const items: KubeObject[] = [];
    let rv = revision;
    let last: string | undefined;
    let more = false;
    // Read in chunks at one revision: one range of a big collection overflows gRPC's message limit.
    for (let from = start; ;) {
      const res = await this.rangeAt(prefix, from, rv, LIST_CHUNK);
      rv ??= Number(res.header.revision);
      for (const kv of res.kvs) {
        const obj = decode(kv);
        if (!opts.filter(obj)) continue;
        if (opts.limit !== undefined && items.length >= opts.limit) {
          more = true;
          break;
        }
        items.push(obj);
        last = kv.key.toString();
      }
      const lastRead = res.kvs[res.kvs.length - 1];
      if (more || !res.more || !lastRead) break;
      from = lastRead.key.toString() + '\0';
    }
    const continueToken = more && last ? encodeContinue(last + '\0', rv) : undefined;
    return { items, resourceVersion: String(rv), ...(continueToken ? { continueToken } : {}) };
  }

  private async rangeAt(
    prefix: string,
    start: string,
    revision: number | undefined,
    limit: number,
  ) {
    try {
      return await this.etcd.kv.range({
        key: Buffer.from(start),
        range_end: prefixEnd(prefix),
        limit,
        ...(revision !== undefined ? { revision } : {}),
      });
    } catch (err) {
      if (isCompacted(err)) {
        throw gone(
          'The provided continue parameter is too old to display a consistent list result. Restart the list without it.',
        );
      }
      throw err;
    }
  }

  /**
   * Creates the object if absent. `claims` are extra keys (e.g. a Service's cluster IP) that must
   * be absent too and are written in the same transaction; a taken claim returns `false`.
   */
  async create(
    r: ResourceType,
    namespace: string | undefined,
    obj: KubeObject,
    claims: string[] = [],
  ): Promise<KubeObject> {
    const name = obj.metadata.name!;
    const key = Buffer.from(this.key(r, namespace, name));
    const claimKeys = claims.map((c) => Buffer.from(c));
    const owner = Buffer.from(this.key(r, namespace, name));
    const res = await this.etcd.kv.txn({
      compare: [key, ...claimKeys].map((k) => ({
        key: k,
        target: 'Create',
        result: 'Equal',
        create_revision: 0,
      })),
      success: [
        { request_put: { key, value: encode(obj) } },
        ...claimKeys.map((k) => ({ request_put: { key: k, value: owner } })),
      ],
      failure: [{ request_range: { key } }],
    });
    if (!res.succeeded) {
      if (res.responses[0]?.response_range.kvs.length) throw alreadyExists(r, name);
      throw new ClaimTakenError(claims);
    }
    return withVersion(obj, res.header.revision);
  }

  /**
   * Read-modify-write guarded by the mod revision that was read, retried when another writer
   * got in between. `mutate` throws ApiError (e.g. a resourceVersion precondition) to abort.
   */
  async update(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    mutate: (current: KubeObject) => KubeObject | Promise<KubeObject>,
  ): Promise<KubeObject> {
    const key = Buffer.from(this.key(r, namespace, name));
    const deadline = Date.now() + UPDATE_DEADLINE_MS;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      await retryPause(attempt);
      const cur = (await this.etcd.kv.range({ key })).kvs[0];
      if (!cur) throw notFound(r, name);
      const next = await mutate(decode(cur));
      const res = await this.etcd.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: cur.mod_revision }],
        success: [{ request_put: { key, value: encode(next) } }],
        failure: [],
      });
      if (res.succeeded) return withVersion(next, res.header.revision);
    }
    throw conflict(r, name, 'the object is being modified too often; try again');
  }

  /** Deletes after `check` accepted the current state (preconditions), removing the keys it claimed; returns that state. */
  async delete(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    check?: (current: KubeObject) => void,
    releasesOf?: (current: KubeObject) => string[],
  ): Promise<KubeObject> {
    const key = Buffer.from(this.key(r, namespace, name));
    const deadline = Date.now() + UPDATE_DEADLINE_MS;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      await retryPause(attempt);
      const cur = (await this.etcd.kv.range({ key })).kvs[0];
      if (!cur) throw notFound(r, name);
      const obj = decode(cur);
      check?.(obj);
      const res = await this.etcd.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: cur.mod_revision }],
        success: [
          { request_delete_range: { key } },
          ...(releasesOf?.(obj) ?? []).map((k) => ({
            request_delete_range: { key: Buffer.from(k) },
          })),
        ],
        failure: [],
      });
      if (res.succeeded) return obj;
    }
    throw conflict(r, name, 'the object is being modified too often; try again');
  }

  /** Removes every object of a collection (used when a namespace is deleted). */
  async deleteCollection(r: ResourceType, namespace: string | undefined): Promise<void> {
    const prefix = this.key(r, namespace);
    await this.etcd.kv.deleteRange({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
  }

  /** Streams changes with mod revision > fromRevision; resolves once the watch is established. */
  async watch(
    r: ResourceType,
    namespace: string | undefined,
    fromRevision: number,
    sink: WatchSink,
  ): Promise<() => Promise<void>> {
    await this.checkNotCompacted(fromRevision);
    const watcher: Watcher = await this.etcd
      .watch()
      .prefix(this.key(r, namespace))
      .startRevision(String(fromRevision + 1))
      .withPreviousKV()
      .create();
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        const prev = ev.prev_kv ? decode(ev.prev_kv) : undefined;
        if (ev.type === 'Put')
          sink.event(ev.kv.version === '1' ? 'ADDED' : 'MODIFIED', decode(ev.kv), prev);
        else if (ev.prev_kv)
          sink.event('DELETED', withVersion(decodeRaw(ev.prev_kv), ev.kv.mod_revision), prev);
      }
      if (res.events.length === 0) sink.progress(Number(res.header.revision));
    });
    watcher.on('error', (err) => {
      const expired = /compact/i.test(String(err.message));
      sink.error(
        expired
          ? gone(`too old resource version: ${fromRevision}`)
          : new ApiError(500, 'InternalError', `watch failed: ${err.message}`, undefined, {
              cause: err,
            }),
      );
    });
    return () => watcher.cancel();
  }

  private async checkNotCompacted(revision: number): Promise<void> {
    if (revision <= 0) return;
    try {
      await this.etcd.kv.range({ key: Buffer.from(this.root), limit: 1, revision });
    } catch (err) {
      if (isCompacted(err)) throw gone(`too old resource version: ${revision}`);
      if (/future revision/.test(String((err as Error).message))) return;
      throw err;
    }
  }
}

function isCompacted(err: unknown): boolean {
  return /compacted/.test(String((err as Error)?.message));
}

function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  b[b.length - 1]!++;
  return b;
}

function encode(obj: KubeObject): Buffer {
  const { resourceVersion: _, ...meta } = obj.metadata;
  return Buffer.from(JSON.stringify({ ...obj, metadata: meta }));
}

function decodeRaw(kv: IKeyValue): KubeObject {
  return JSON.parse(kv.value.toString()) as KubeObject;
}

function decode(kv: IKeyValue): KubeObject {
  return withVersion(decodeRaw(kv), kv.mod_revision);
}

function withVersion(obj: KubeObject, revision: string | number): KubeObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } };
}

function encodeContinue(start: string, rv: number): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64');
}

function decodeContinue(token: string, prefix: string): { start: string; revision: number } {
  try {
    const c = JSON.parse(Buffer.from(token, 'base64').toString()) as { rv: number; start: string };
    if (typeof c.rv === 'number' && typeof c.start === 'string' && c.start.startsWith(prefix)) {
      return { start: c.start, revision: c.rv };
    }
  } catch {
    // fall through to the error below
  }
  throw new ApiError(400, 'BadRequest', 'continue key is not valid: restart the list without it');
}
