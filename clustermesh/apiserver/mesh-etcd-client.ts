// The clustermesh API server's mesh etcd client, following its certificate files
// (certs/source.ts): when CA, certificate and key are replaced by a consistent new set, a new etcd3
// client with it takes over new calls of the same EtcdMeshKv, so the MeshWriter keeps what it knows
// of the stored state (no relist, no rewrite, no delete of unchanged keys); the old client is
// closed after a grace period so calls in flight finish. No restart needed for a rotation.
import { Etcd3 } from 'etcd3';
import { CertificateSource, type CertificateFiles, type TlsMaterial } from '../../certs/index.ts';
import { EtcdMeshKv } from './etcd-kv.ts';

export interface MeshEtcdClientOptions {
  /** `unix:///path/client.sock:0` or `https://ip:port` */
  hosts: string;
  files: CertificateFiles;
  /** the name to verify in the server's certificate (a unix socket has none) */
  serverName?: string;
  /** how long the replaced client may finish its calls; default 30 s */
  drainMs?: number;
  /** certificate poll period (besides the directory watch); default 2 s */
  pollMs?: number;
  onLog?: (event: string, fields: Record<string, unknown>) => void;
}

export class MeshEtcdClient {
  private source: CertificateSource;
  private client: Etcd3 | undefined;
  private kvStore: EtcdMeshKv | undefined;
  private readonly retiring = new Set<{ client: Etcd3; timer: NodeJS.Timeout }>();
  /** adopted certificate changes since start */
  reloads = 0;

  constructor(private readonly opts: MeshEtcdClientOptions) {
    this.source = new CertificateSource(opts.files, {
      pollMs: opts.pollMs ?? 2000,
      onError: (e) =>
        opts.onLog?.('etcd-cert-refused', { code: e.code, error: e.message, keeping: 'previous' }),
    });
  }

  /** Reads the certificate files (throws a CertError when they are not a valid set). */
  async start(): Promise<EtcdMeshKv> {
    await this.source.start();
    this.client = this.connect(this.source.current());
    this.kvStore = new EtcdMeshKv(this.client);
    this.source.onChange((m) => this.rotate(m));
    return this.kvStore;
  }

  get kv(): EtcdMeshKv {
    if (!this.kvStore) throw new Error('MeshEtcdClient.start() was not called');
    return this.kvStore;
  }

  /** When the certificate in use expires. */
  get notAfter(): Date {
    return this.source.current().notAfter;
  }

  stop(): void {
    this.source.stop();
    for (const r of this.retiring) {
      clearTimeout(r.timer);
      r.client.close();
    }
    this.retiring.clear();
    this.client?.close();
    this.client = undefined;
  }

  private connect(m: TlsMaterial): Etcd3 {
    return new Etcd3({
      hosts: this.opts.hosts,
      credentials: {
        rootCertificate: Buffer.from(m.ca),
        certChain: Buffer.from(m.cert),
        privateKey: Buffer.from(m.key),
      },
      ...(this.opts.serverName && {
        grpcOptions: { 'grpc.ssl_target_name_override': this.opts.serverName },
      }),
    });
  }

  private rotate(m: TlsMaterial): void {
    if (!this.kvStore || !this.client) return;
    const next = this.connect(m);
    const old = this.kvStore.useClient(next);
    this.client = next;
    this.reloads++;
    const entry = {
      client: old,
      timer: setTimeout(() => {
        old.close();
        this.retiring.delete(entry);
      }, this.opts.drainMs ?? 30_000).unref(),
    };
    this.retiring.add(entry);
    this.opts.onLog?.('etcd-cert-reloaded', {
      version: m.version,
      notAfter: m.notAfter.toISOString(),
    });
  }
}
