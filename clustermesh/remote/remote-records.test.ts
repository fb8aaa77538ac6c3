// Property: whatever happens on the remote — puts, re-puts, deletes, outages with changes
// meanwhile, canaries present at relist or arriving later — the sink ends up with exactly the
// remote's records, and every sink call is a real change (no identical re-put, no delete of
// something absent, no delete of something still there).
import test from 'ava';
import fc from 'fast-check';
import { MeshTable, type IPIdentityPair } from '../kvstore/index.ts';
import { RemoteRecords } from './remote-records.ts';
import { LOCAL, remoteFixture } from './test-fixtures.ts';
import type { KeyValue, RemoteSink } from './types.ts';

const f = remoteFixture('c2', 2);

type Op =
  | { t: 'put'; i: number; v: number }
  | { t: 'del'; i: number }
  | { t: 'outage' }
  | { t: 'reconnect'; canaries: boolean };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ t: fc.constant('put' as const), i: fc.nat(15), v: fc.nat(2) }),
  fc.record({ t: fc.constant('del' as const), i: fc.nat(15) }),
  fc.constant({ t: 'outage' as const }),
  fc.record({ t: fc.constant('reconnect' as const), canaries: fc.boolean() }),
);

/** A sink mirroring ipcache rows, failing on any call that changes nothing. */
class StrictSink {
  readonly rows = new Map<string, number>();
  readonly faults: string[] = [];
  readonly sink: RemoteSink = {
    upsertIpcache: (_c, e: IPIdentityPair) => {
      if (this.rows.get(e.IP) === e.ID) this.faults.push(`redundant upsert ${e.IP}`);
      this.rows.set(e.IP, e.ID);
    },
    deleteIpcache: (_c, e: IPIdentityPair) => {
      if (!this.rows.delete(e.IP)) this.faults.push(`delete of absent ${e.IP}`);
    },
    upsertIdentity: () => undefined,
    deleteIdentity: () => undefined,
    upsertNode: () => undefined,
    deleteNode: () => undefined,
    upsertService: () => undefined,
    deleteService: () => undefined,
  };
}

test('sink state equals the remote state after any history of changes and outages', (t) => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const store = new Map<string, string>();
      const put = (kv: KeyValue) => store.set(kv.key, kv.value);
      [f.config(), f.node(1), ...f.canaries()].forEach(put);
      const strict = new StrictSink();
      const records = new RemoteRecords({ name: 'c2', id: 2 }, new MeshTable(LOCAL), strict.sink, {
        onReject: (key, r) => strict.faults.push(`rejected ${key}: ${r.detail}`),
        onConfig: () => undefined,
        onApplied: () => undefined,
      });
      const listing = (canaries: boolean) =>
        [...store]
          .map(([key, value]) => ({ key, value }))
          .filter((kv) => canaries || !kv.key.startsWith('cilium/synced/'));
      records.applyListing(listing(true));
      let connected = true;
      let pendingCanaries = false;
      for (const o of ops) {
        if (o.t === 'outage') connected = false;
        else if (o.t === 'reconnect') {
          if (connected) continue;
          connected = true;
          records.applyListing(listing(o.canaries));
          pendingCanaries = !o.canaries;
        } else {
          const kv = f.endpoint(1, 10 + o.i, 1 + (o.t === 'put' ? o.v : 0));
          if (o.t === 'put') store.set(kv.key, kv.value);
          else if (!store.delete(kv.key)) continue;
          if (connected)
            records.applyEvents([
              o.t === 'put' ? { type: 'put', ...kv } : { type: 'delete', key: kv.key },
            ]);
        }
      }
      if (!connected) records.applyListing(listing(true));
      else if (pendingCanaries)
        records.applyEvents(f.canaries().map((kv) => ({ type: 'put' as const, ...kv })));
      const expected = new Map<string, number>();
      for (const [key, value] of store)
        if (key.startsWith('cilium/state/ip/')) {
          const e = JSON.parse(value) as IPIdentityPair;
          expected.set(e.IP, e.ID);
        }
      t.deepEqual(strict.faults, []);
      t.deepEqual(new Map([...strict.rows].sort()), new Map([...expected].sort()));
      return strict.faults.length === 0 && strict.rows.size === expected.size;
    }),
    { numRuns: 300 },
  );
});
