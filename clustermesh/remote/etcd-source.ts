// RemoteWatchSource over a remote cluster's mesh etcd, with the mTLS material of its connection
// bundle. Endpoints: `https://ip:port` (the lab, real clusters) or `unix(s):///path` (tests; etcd
// 3.4 serves TLS on a unix socket named after its URL's host:port). A unix socket has no host
// name, so the server certificate is checked against `<cluster>.mesh-etcd` there (issue the mesh
// etcd's server certificate with that DNS name, see certs/README.md).
import { Etcd3, type IOptions } from 'etcd3';
import type { ConnectionBundle } from '../../certs/index.ts';
import type { KeyValue, Listing, RemoteWatchSource, WatchEvent, WatchHandle } from './types.ts';

export interface EtcdSourceOptions {
  /** deadline of each unary call (get, one page of a list) */
  callTimeoutMs?: number;
  /** keys per page of a listing (bounded gRPC messages) */
  pageSize?: number;
}

export class RemoteSourceError extends Error {
  constructor(
    readonly code: 'ERR_REMOTE_CONNECT' | 'ERR_REMOTE_WATCH',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RemoteSourceError';
  }
}

/** The server name verified on unix socket endpoints. */
export function unixServerName(cluster: string): string {
  return `${cluster}.mesh-etcd`;
}

/** etcd3 host strings for bundle endpoints (the TLS credentials apply to all of them). */
export function etcdHosts(endpoints: readonly string[]): string[] {
  return endpoints.map((e) => e.replace(/^unixs:\/\//, 'unix://').replace(/^https:\/\//, ''));
}

export function etcdSourceFor(
  bundle: ConnectionBundle,
  opts: EtcdSourceOptions = {},
): RemoteWatchSource {
  return new EtcdWatchSource(bundle, opts);
}

class EtcdWatchSource implements RemoteWatchSource {
  private readonly client: Etcd3;
  private readonly timeoutMs: number;
  private readonly pageSize: number;
  private closed = false;

  constructor(bundle: ConnectionBundle, opts: EtcdSourceOptions) {
    this.timeoutMs = opts.callTimeoutMs ?? 5000;
    this.pageSize = opts.pageSize ?? 2000;
    const unix = bundle.endpoints.some((e) => e.startsWith('unix'));
    const options: IOptions = {
      hosts: etcdHosts(bundle.endpoints),
      credentials: {
        rootCertificate: Buffer.from(bundle.caPem),
        certChain: Buffer.from(bundle.certPem),
        privateKey: Buffer.from(bundle.keyPem),
      },
      dialTimeout: this.timeoutMs,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.timeoutMs }),
      ...(unix
        ? { grpcOptions: { 'grpc.ssl_target_name_override': unixServerName(bundle.cluster) } }
        : {}),
    };
    this.client = new Etcd3(options);
  }

  async get(key: string): Promise<string | undefined> {
    const res = await this.call('get', () =>
      this.client.kv.range({ key: Buffer.from(key), limit: 1 }),
    );
    const kv = res.kvs[0];
    return kv && kv.key.toString() === key ? kv.value.toString() : undefined;
  }

  async list(prefixes: readonly string[]): Promise<Listing> {
    let revision: number | undefined;
    const entries: KeyValue[] = [];
    for (const prefix of prefixes) {
      const end = prefixEnd(prefix);
      let from = Buffer.from(prefix);
      for (;;) {
        const res = await this.call('list', () =>
          this.client.kv.range({
            key: from,
            range_end: end,
            limit: this.pageSize,
            ...(revision !== undefined ? { revision: String(revision) } : {}),
          }),
        );
        revision ??= Number(res.header.revision);
        for (const kv of res.kvs)
          entries.push({ key: kv.key.toString(), value: kv.value.toString() });
        const last = res.kvs[res.kvs.length - 1];
        if (!res.more || !last) break;
        from = Buffer.concat([last.key, Buffer.from([0])]);
      }
    }
    return { revision: revision ?? 0, entries };
  }

  async watch(
    prefixes: readonly string[],
    afterRevision: number,
    onEvents: (events: WatchEvent[]) => void,
    onBroken: (error: Error) => void,
  ): Promise<WatchHandle> {
    // one stream over the common prefix keeps the remote's order across kinds
    const watcher = await this.call('watch', () =>
      this.client
        .watch()
        .prefix(commonPrefix(prefixes))
        .startRevision(String(afterRevision + 1))
        .create(),
    );
    let broken = false;
    const breakOnce = (why: string, cause?: unknown) => {
      if (broken) return;
      broken = true;
      void watcher.cancel().catch(() => undefined);
      onBroken(new RemoteSourceError('ERR_REMOTE_WATCH', why, { cause }));
    };
    watcher.on('data', (res) => {
      if (broken) return;
      const events: WatchEvent[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        if (!prefixes.some((p) => key.startsWith(p))) continue;
        events.push(
          ev.type === 'Delete'
            ? { type: 'delete', key }
            : { type: 'put', key, value: ev.kv.value.toString() },
        );
      }
      if (events.length > 0) onEvents(events);
    });
    watcher.on('disconnected', (err) => breakOnce(`watch stream lost: ${err.message}`, err));
    watcher.on('error', (err) => breakOnce(`watch failed: ${err.message}`, err));
    watcher.on('end', () => breakOnce('watch stream ended'));
    return {
      close: async () => {
        broken = true;
        // a dead stream may never answer the cancel; closing the client ends it anyway
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          watcher.cancel().catch(() => undefined),
          new Promise((r) => (timer = setTimeout(r, 1000))),
        ]);
        clearTimeout(timer);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([fn(), timeout]);
    } catch (cause) {
      throw new RemoteSourceError(
        'ERR_REMOTE_CONNECT',
        `${what} on the remote mesh etcd failed: ${(cause as Error).message}`,
        { cause },
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1] = end[end.length - 1]! + 1;
  return end;
}

function commonPrefix(prefixes: readonly string[]): string {
  let common = prefixes[0] ?? '';
  for (const p of prefixes) while (!p.startsWith(common)) common = common.slice(0, -1);
  return common;
}
