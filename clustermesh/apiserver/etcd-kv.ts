// MeshKv over an etcd3 client: prefix listing in pages, batches as one transaction. The client can
// be swapped (new certificates: mesh-etcd-client.ts); calls in flight finish on the old one.
import type { Etcd3 } from 'etcd3';
import type { KvOp, MeshKv } from './types.ts';

const LIST_PAGE = 5000;

export class EtcdMeshKv implements MeshKv {
  constructor(private client: Etcd3) {}

  /** New calls go through `next`; returns the previous client (the caller closes it later). */
  useClient(next: Etcd3): Etcd3 {
    const old = this.client;
    this.client = next;
    return old;
  }

  async list(prefix: string): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const end = prefixEnd(prefix);
    let from = Buffer.from(prefix);
    for (;;) {
      const res = await this.client.kv.range({ key: from, range_end: end, limit: LIST_PAGE });
      for (const kv of res.kvs) out.set(kv.key.toString(), kv.value.toString());
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) return out;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async commit(ops: readonly KvOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.client.kv.txn({
      compare: [],
      success: ops.map((op) =>
        op.value === null
          ? { request_delete_range: { key: Buffer.from(op.key) } }
          : { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value) } },
      ),
      failure: [],
    });
  }
}

/** The end of etcd's range for every key starting with `prefix`. */
function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
