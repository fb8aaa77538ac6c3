// One watched resource: a list/watch loop of our own (client-node's informer gives up on errors
// other than 410), a local store, and key queues for consumers. On 410 Gone it relists and
// diffs against the store by resourceVersion, so unchanged objects raise no event; on any other
// failure it backs off (jitter, cap) and re-watches from the last resourceVersion; it never
// gives up until stop().
import { Backoff, unrefTimeout, type BackoffOptions } from './backoff.ts';
import { KeyQueue, type KeyQueueOptions } from './key-queue.ts';
import {
  isK8sError,
  objectKey,
  type KubeApi,
  type KubeObject,
  type ResourceDef,
  type WatchEventType,
  type WatchHandle,
} from './types.ts';

export interface ResourceOptions {
  backoff?: BackoffOptions;
  /** Server-side watch timeout; the loop re-watches when it ends. */
  watchTimeoutSeconds?: number;
  /** Consecutive failed watches after which the loop relists instead of re-watching. */
  relistAfterFailures?: number;
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export type ChangeType = 'upsert' | 'delete';
export interface Change<T> {
  type: ChangeType;
  key: string;
  object: T;
}

export interface ResourceStats {
  lists: number;
  watches: number;
  /** 410 Gone answers that forced a relist. */
  gone: number;
  failures: number;
}

type WatchOutcome = 'closed' | 'gone' | 'failed';

export class Resource<T extends KubeObject> {
  private readonly store = new Map<string, T>();
  private readonly queues = new Set<KeyQueue>();
  private readonly listeners = new Set<(c: Change<T>) => void>();
  private resourceVersion = '';
  private running = false;
  private loop: Promise<void> | undefined;
  private currentWatch: WatchHandle | undefined;
  private wake: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  private syncedResolve!: () => void;
  private hasSynced = false;
  readonly synced: Promise<void>;
  readonly stats: ResourceStats = { lists: 0, watches: 0, gone: 0, failures: 0 };

  constructor(
    private readonly api: KubeApi,
    readonly def: ResourceDef<T>,
    private readonly opts: ResourceOptions = {},
  ) {
    this.synced = new Promise((r) => (this.syncedResolve = r));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.currentWatch?.abort();
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.loop;
    for (const q of this.queues) q.stop();
    this.queues.clear();
  }

  get isSynced(): boolean {
    return this.hasSynced;
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  /** Raw change notifications (after the store changed); consumers should prefer subscribe(). */
  onChange(listener: (c: Change<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * A key queue for one consumer: `handler` gets the key and the latest object in the store
   * (undefined: deleted). Its `synced` resolves after every key of the initial list was handled.
   */
  subscribe(
    handler: (key: string, object: T | undefined) => Promise<void> | void,
    opts: KeyQueueOptions = {},
  ): KeyQueue {
    const queue = new KeyQueue((key) => handler(key, this.store.get(key)), opts);
    this.queues.add(queue);
    for (const key of this.store.keys()) queue.add(key);
    if (this.hasSynced) queue.markSynced();
    return queue;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.opts.backoff);
    let needList = true;
    let failedWatches = 0;
    while (this.running) {
      if (needList) {
        try {
          await this.relist();
          needList = false;
          failedWatches = 0;
        } catch (err) {
          this.stats.failures++;
          this.log('list-failed', { error: String(err) });
          await this.sleep(backoff.next());
          continue;
        }
      }
      const started = Date.now();
      const { outcome, events } = await this.watchOnce();
      if (!this.running) break;
      if (outcome === 'gone') {
        this.stats.gone++;
        this.log('watch-gone', { resourceVersion: this.resourceVersion });
        needList = true;
        continue;
      }
      // A stream that ends at once without events is a failure too: no hot loop.
      if (outcome === 'failed' || (events === 0 && Date.now() - started < 1000)) {
        this.stats.failures++;
        if (++failedWatches >= (this.opts.relistAfterFailures ?? 20)) needList = true;
        await this.sleep(backoff.next());
        continue;
      }
      backoff.reset();
      failedWatches = 0;
    }
  }

  /** Lists and reconciles the store: events only for objects added, changed or gone. */
  private async relist(): Promise<void> {
    const { items, resourceVersion } = await this.api.list(this.def);
    this.stats.lists++;
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      const prev = this.store.get(key);
      if (prev && prev.metadata.resourceVersion === item.metadata.resourceVersion) continue;
      this.store.set(key, item);
      this.emit({ type: 'upsert', key, object: item });
    }
    // Pruning only now that the whole list is in: what vanished while we were away.
    for (const [key, prev] of [...this.store]) {
      if (seen.has(key)) continue;
      this.store.delete(key);
      this.emit({ type: 'delete', key, object: prev });
    }
    this.resourceVersion = resourceVersion;
    if (!this.hasSynced) {
      this.hasSynced = true;
      for (const q of this.queues) q.markSynced();
      this.syncedResolve();
    }
  }

  private watchOnce(): Promise<{ outcome: WatchOutcome; events: number }> {
    return new Promise((resolve) => {
      let events = 0;
      let settled = false;
      const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300;
      // The server ends a watch after timeoutSeconds; a stream silent past that is half-dead.
      const watchdog = unrefTimeout(
        () => {
          this.log('watch-stalled', { timeoutSeconds });
          finish('failed');
        },
        (timeoutSeconds + 30) * 1000,
      );
      const finish = (outcome: WatchOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(watchdog);
        this.currentWatch?.abort();
        this.currentWatch = undefined;
        resolve({ outcome, events });
      };
      const onEvent = (type: WatchEventType, object: any) => {
        if (settled) return;
        events++;
        if (type === 'ERROR') {
          this.log('watch-error-event', { status: object });
          return finish(object?.code === 410 ? 'gone' : 'failed');
        }
        this.apply(type, object);
      };
      const onDone = (err: unknown) => {
        if (err) this.log('watch-ended', { error: String(err) });
        finish(isK8sError(err, 'K8S_GONE') ? 'gone' : err ? 'failed' : 'closed');
      };
      this.stats.watches++;
      this.api
        .watch(
          this.def,
          {
            resourceVersion: this.resourceVersion,
            timeoutSeconds,
          },
          onEvent,
          onDone,
        )
        .then((handle) => {
          if (settled || !this.running) handle.abort();
          else this.currentWatch = handle;
          if (!this.running) finish('closed');
        })
        .catch(onDone);
    });
  }

  private apply(type: WatchEventType, object: T): void {
    const rv = object?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const key = objectKey(object);
    if (type === 'DELETED') {
      const prev = this.store.get(key);
      this.store.delete(key);
      if (prev) this.emit({ type: 'delete', key, object });
    } else {
      this.store.set(key, object);
      this.emit({ type: 'upsert', key, object });
    }
    if (rv) this.resourceVersion = rv;
  }

  private emit(change: Change<T>): void {
    for (const l of this.listeners) l(change);
    for (const q of this.queues) q.add(change.key);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = unrefTimeout(resolve, ms);
    });
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.opts.onLog?.(event, { resource: this.def.plural, ...fields });
  }
}
