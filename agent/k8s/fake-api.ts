// An in-memory KubeApi for unit tests of control-plane logic: revisions as resourceVersions,
// watches that resume from a revision (410 Gone once compacted), and switches for outages.
import {
  K8sError,
  objectKey,
  type KubeApi,
  type KubeObject,
  type ListResult,
  type ResourceDef,
  type WatchEventType,
  type WatchHandle,
} from './types.ts';

interface Event {
  plural: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  revision: number;
}

interface Watcher {
  plural: string;
  onEvent: (type: WatchEventType, object: any) => void;
  onDone: (err: unknown) => void;
}

const clone = <T>(o: T): T => structuredClone(o);

export class FakeKubeApi implements KubeApi {
  private revision = 1;
  private compactedAt = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: Event[] = [];
  private readonly watchers = new Set<Watcher>();
  /** While true every call fails as if the API server were unreachable. */
  down = false;
  readonly calls = { list: 0, watch: 0 };

  async list<T extends KubeObject>(def: ResourceDef<T>): Promise<ListResult<T>> {
    this.calls.list++;
    this.checkUp();
    const items = [...this.bucket(def.plural).values()].map((o) => clone(o) as T);
    return { items, resourceVersion: String(this.revision) };
  }

  async get<T extends KubeObject>(
    def: ResourceDef<T>,
    name: string,
    namespace?: string,
  ): Promise<T> {
    this.checkUp();
    const o = this.bucket(def.plural).get(namespace ? `${namespace}/${name}` : name);
    if (!o) throw new K8sError('K8S_NOT_FOUND', 404, `${def.plural} ${name} not found`);
    return clone(o) as T;
  }

  async create<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T> {
    this.checkUp();
    if (this.bucket(def.plural).has(objectKey(obj))) {
      throw new K8sError('K8S_ALREADY_EXISTS', 409, `${def.plural} ${obj.metadata.name} exists`);
    }
    return this.write(def.plural, 'ADDED', obj) as T;
  }

  async replace<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T> {
    this.checkUp();
    const cur = this.bucket(def.plural).get(objectKey(obj));
    if (!cur)
      throw new K8sError('K8S_NOT_FOUND', 404, `${def.plural} ${obj.metadata.name} not found`);
    const rv = obj.metadata.resourceVersion;
    if (rv && rv !== cur.metadata.resourceVersion) {
      throw new K8sError('K8S_CONFLICT', 409, `${def.plural} ${obj.metadata.name} changed`);
    }
    return this.write(def.plural, 'MODIFIED', obj) as T;
  }

  async delete(def: ResourceDef, name: string, namespace?: string): Promise<void> {
    this.checkUp();
    const key = namespace ? `${namespace}/${name}` : name;
    const cur = this.bucket(def.plural).get(key);
    if (!cur) throw new K8sError('K8S_NOT_FOUND', 404, `${def.plural} ${name} not found`);
    this.write(def.plural, 'DELETED', cur);
  }

  async watch(
    def: ResourceDef,
    opts: { resourceVersion: string },
    onEvent: (type: WatchEventType, object: any) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle> {
    this.calls.watch++;
    if (this.down) {
      queueMicrotask(() => onDone(new K8sError('K8S_UNAVAILABLE', 0, 'connection refused')));
      return { abort: () => undefined };
    }
    const from = Number(opts.resourceVersion || '0');
    if (from < this.compactedAt) {
      queueMicrotask(() => onDone(new K8sError('K8S_GONE', 410, 'too old resource version')));
      return { abort: () => undefined };
    }
    const w: Watcher = { plural: def.plural, onEvent, onDone };
    this.watchers.add(w);
    queueMicrotask(() => {
      for (const e of this.history) {
        if (e.plural === def.plural && e.revision > from && this.watchers.has(w)) {
          onEvent(e.type, clone(e.object));
        }
      }
    });
    return { abort: () => this.end(w, null) };
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  /** Forgets history up to now: watches from older resourceVersions get 410. */
  compact(): void {
    this.compactedAt = this.revision;
    this.history.length = 0;
  }

  /** Ends every open watch, with `err` or cleanly. */
  closeWatches(err: unknown = null): void {
    for (const w of [...this.watchers]) this.end(w, err);
  }

  private end(w: Watcher, err: unknown): void {
    if (!this.watchers.delete(w)) return;
    w.onDone(err);
  }

  private write(plural: string, type: Event['type'], obj: KubeObject): KubeObject {
    const stored = clone(obj);
    stored.metadata.resourceVersion = String(++this.revision);
    const key = objectKey(stored);
    if (type === 'DELETED') this.bucket(plural).delete(key);
    else this.bucket(plural).set(key, stored);
    this.history.push({ plural, type, object: stored, revision: this.revision });
    for (const w of this.watchers) if (w.plural === plural) w.onEvent(type, clone(stored));
    return clone(stored);
  }

  private bucket(plural: string): Map<string, KubeObject> {
    let b = this.objects.get(plural);
    if (!b) this.objects.set(plural, (b = new Map()));
    return b;
  }

  private checkUp(): void {
    if (this.down) throw new K8sError('K8S_UNAVAILABLE', 0, 'connection refused');
  }
}
