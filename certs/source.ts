// A certificate source that follows files on disk, so new certificates are used without a
// restart: callers take `current()` for each new connection, or subscribe with `onChange` to
// reconnect. A replacement is adopted only once CA, certificate and key form a consistent set
// (key matches certificate, certificate issued by the CA), so a half-done rotation (one file
// replaced, the other not yet) keeps the previous set until the next event.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CertError } from './keys.ts';

export interface CertificateFiles {
  caPath: string;
  certPath: string;
  keyPath: string;
}

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
  /** increases by one on every adopted change */
  version: number;
  notAfter: Date;
}

export interface CertificateSourceOptions {
  /** fallback poll, for changes fs.watch misses (replaced directories, network filesystems) */
  pollMs?: number;
  /** coalesces bursts of file events */
  debounceMs?: number;
  /** told about a set that was read but refused (the previous set stays in use) */
  onError?: (error: CertError) => void;
}

export class CertificateSource {
  private material: TlsMaterial | undefined;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private readonly watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private debounceTimer: NodeJS.Timeout | undefined;
  private reloading: Promise<boolean> = Promise.resolve(false);

  constructor(
    readonly files: CertificateFiles,
    private readonly opts: CertificateSourceOptions = {},
  ) {}

  /** Reads the files (throws a CertError if they are not a valid set) and starts watching. */
  async start(): Promise<void> {
    const first = await readMaterial(this.files, 1);
    this.material = first;
    try {
      for (const dir of new Set(Object.values(this.files).map((p) => dirname(p)))) {
        const w = watch(dir, { persistent: false }, () => this.scheduleReload());
        w.on('error', () => this.scheduleReload());
        this.watchers.push(w);
      }
      this.pollTimer = setInterval(() => this.scheduleReload(), this.opts.pollMs ?? 2000).unref();
    } catch (cause) {
      this.stop();
      throw new CertError(
        'ERR_CERT_WATCH',
        `cannot watch ${Object.values(this.files).join(', ')}`,
        { cause },
      );
    }
  }

  stop(): void {
    for (const w of this.watchers.splice(0)) w.close();
    clearInterval(this.pollTimer);
    clearTimeout(this.debounceTimer);
    this.pollTimer = this.debounceTimer = undefined;
  }

  /** The set to use for a new connection. */
  current(): TlsMaterial {
    if (!this.material)
      throw new CertError('ERR_CERT_NOT_STARTED', 'CertificateSource.start() was not called');
    return this.material;
  }

  /** Calls `listener` after each adopted change; returns the unsubscribe function. */
  onChange(listener: (m: TlsMaterial) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads the files now; resolves true if a new set was adopted. */
  reload(): Promise<boolean> {
    this.reloading = this.reloading.then(() => this.reloadOnce());
    return this.reloading;
  }

  private scheduleReload(): void {
    clearTimeout(this.debounceTimer);
    this.debounceTimer = setTimeout(() => void this.reload(), this.opts.debounceMs ?? 50).unref();
  }

  private async reloadOnce(): Promise<boolean> {
    const old = this.material;
    if (!old) return false;
    let next: TlsMaterial;
    try {
      next = await readMaterial(this.files, old.version + 1);
    } catch (e) {
      this.opts.onError?.(e as CertError);
      return false;
    }
    if (next.ca === old.ca && next.cert === old.cert && next.key === old.key) return false;
    this.material = next;
    for (const l of this.listeners) l(next);
    return true;
  }
}

async function readMaterial(files: CertificateFiles, version: number): Promise<TlsMaterial> {
  let ca: string, cert: string, key: string;
  try {
    [ca, cert, key] = (await Promise.all(
      [files.caPath, files.certPath, files.keyPath].map((p) => readFile(p, 'utf8')),
    )) as [string, string, string];
  } catch (cause) {
    throw new CertError('ERR_CERT_READ', `cannot read ${Object.values(files).join(', ')}`, {
      cause,
    });
  }
  try {
    const caCert = new X509Certificate(ca);
    const leaf = new X509Certificate(cert);
    if (!leaf.checkIssued(caCert) || !leaf.verify(caCert.publicKey)) {
      throw new Error(`${files.certPath} was not issued by ${files.caPath}`);
    }
    const fromKey = createPublicKey(createPrivateKey(key)).export({ format: 'der', type: 'spki' });
    if (!fromKey.equals(leaf.publicKey.export({ format: 'der', type: 'spki' }))) {
      throw new Error(`${files.keyPath} is not the key of ${files.certPath}`);
    }
    return { ca, cert, key, version, notAfter: new Date(leaf.validTo) };
  } catch (cause) {
    throw new CertError(
      'ERR_CERT_INCONSISTENT',
      `certificate files are not a consistent set: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}
