// An in-memory remote kvstore with revisions, for unit tests of the merge and reconnect logic:
// `connect()` gives a RemoteWatchSource; `setDown(true)` breaks every open watch and refuses calls
// until `setDown(false)`, like a remote etcd outage.
import type { KeyValue, Listing, RemoteWatchSource, WatchEvent, WatchHandle } from './types.ts';

interface Watch {
  prefixes: readonly string[];
  onEvents: (events: WatchEvent[]) => void;
  onBroken: (error: Error) => void;
}

export class FakeRemoteStore {
  private readonly data = new Map<string, string>();
  private readonly history: { revision: number; event: WatchEvent }[] = [];
  private readonly watches = new Set<Watch>();
  private revision = 1;
  private down = false;
  /** number of connect() calls so far */
  connects = 0;

  put(key: string, value: string): void {
    this.commit([{ type: 'put', key, value }]);
  }

  delete(key: string): void {
    if (this.data.has(key)) this.commit([{ type: 'delete', key }]);
  }

  /** Several changes at one revision, delivered together (an etcd transaction). */
  commit(events: WatchEvent[]): void {
    this.revision++;
    for (const ev of events) {
      if (ev.type === 'put') this.data.set(ev.key, ev.value);
      else this.data.delete(ev.key);
      this.history.push({ revision: this.revision, event: ev });
    }
    if (this.down) return;
    for (const w of this.watches) {
      const mine = events.filter((e) => w.prefixes.some((p) => e.key.startsWith(p)));
      if (mine.length > 0) w.onEvents(mine);
    }
  }

  setDown(down: boolean): void {
    this.down = down;
    if (!down) return;
    for (const w of [...this.watches]) {
      this.watches.delete(w);
      w.onBroken(new Error('fake remote went down'));
    }
  }

  connect(): RemoteWatchSource {
    this.connects++;
    const store = this;
    const check = () => {
      if (store.down) return Promise.reject(new Error('fake remote is down'));
      return Promise.resolve();
    };
    const open = new Set<Watch>();
    return {
      async get(key) {
        await check();
        return store.data.get(key);
      },
      async list(prefixes): Promise<Listing> {
        await check();
        const entries: KeyValue[] = [];
        for (const p of prefixes) {
          const keys = [...store.data.keys()].filter((k) => k.startsWith(p)).sort();
          for (const key of keys) entries.push({ key, value: store.data.get(key)! });
        }
        return { revision: store.revision, entries };
      },
      async watch(prefixes, afterRevision, onEvents, onBroken): Promise<WatchHandle> {
        await check();
        const w: Watch = { prefixes, onEvents, onBroken };
        const missed = store.history
          .filter((h) => h.revision > afterRevision)
          .map((h) => h.event)
          .filter((e) => prefixes.some((p) => e.key.startsWith(p)));
        if (missed.length > 0) onEvents(missed);
        store.watches.add(w);
        open.add(w);
        return {
          close: async () => {
            store.watches.delete(w);
            open.delete(w);
          },
        };
      },
      async close() {
        for (const w of open) store.watches.delete(w);
        open.clear();
      },
    };
  }
}
