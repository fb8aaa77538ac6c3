// A directory of connection bundles (a mounted Secret, or files `isthmus certs` wrote), followed
// with fs.watch plus a periodic rescan: a new file connects its remote, a removed file drains it
// (deletes everything it contributed), a changed file reconnects with the new bundle (rotated
// certificates are used without a restart). Invalid, expired or tampered bundles are refused
// and shown in status; a changed file that fails verification leaves the running remote as is.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { verifyBundle, type ConnectionBundle } from '../../certs/index.ts';
import { RemoteCluster, type RemoteClusterOptions } from './remote-cluster.ts';
import type { RemoteError, RemoteStatus, StateKind } from './types.ts';

export interface BundleDirectoryOptions extends Omit<RemoteClusterOptions, 'bundle' | 'source'> {
  dir: string;
  /** the mesh CA certificate bundles must be signed with (a function, to follow rotation) */
  trustedCaPem: string | (() => string);
  /** periodic rescan, for changes fs.watch misses */
  rescanMs?: number;
}

interface FileState {
  hash: string;
  remote?: RemoteCluster;
  /** why the file's current content was refused */
  refusal?: { cluster: string; clusterId: number; error: RemoteError };
}

const NO_SYNC: Record<StateKind, boolean> = {
  nodes: false,
  identities: false,
  ipcache: false,
  services: false,
};

export class BundleDirectory {
  private readonly files = new Map<string, FileState>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: BundleDirectoryOptions) {}

  /** Reads the directory once (connecting what is there), then follows it. */
  async start(): Promise<void> {
    await this.rescan();
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, () => this.schedule());
      this.watcher.on('error', () => this.schedule());
    } catch {
      // the directory may not exist yet: the periodic rescan picks it up
    }
    this.timer = setInterval(() => void this.rescan(), this.opts.rescanMs ?? 5000).unref();
  }

  /** Stops every remote; applied state stays (the agent is shutting down). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearInterval(this.timer);
    clearTimeout(this.debounce);
    await this.scanning;
    await Promise.all([...this.files.values()].map((f) => f.remote?.stop()));
  }

  /** Compares the directory with what is connected and converges; serialized. */
  rescan(): Promise<void> {
    this.scanning = this.scanning.then(() => (this.stopped ? undefined : this.scanOnce()));
    return this.scanning;
  }

  remotes(): RemoteCluster[] {
    return [...this.files.values()].flatMap((f) => (f.remote ? [f.remote] : []));
  }

  status(): RemoteStatus[] {
    const out: RemoteStatus[] = [];
    for (const [file, f] of [...this.files].sort(([a], [b]) => a.localeCompare(b))) {
      if (f.remote) {
        const s = f.remote.status();
        out.push(f.refusal ? { ...s, lastError: f.refusal.error } : s);
      } else if (f.refusal) out.push(refusedStatus(file, f.refusal));
    }
    return out;
  }

  private schedule(): void {
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.rescan(), 50).unref();
  }

  private async scanOnce(): Promise<void> {
    const present = await this.readDir();
    for (const [name, f] of [...this.files]) {
      if (present.has(name)) continue;
      if (f.remote) {
        this.opts.log.info({ cluster: f.remote.name, file: name }, 'bundle removed: draining');
        await f.remote.drain();
      }
      this.files.delete(name);
    }
    for (const [name, text] of present) await this.reconcileFile(name, text);
  }

  private async readDir(): Promise<Map<string, string>> {
    const present = new Map<string, string>();
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
    } catch {
      return present;
    }
    // dot files: editor temp files, and the `..data` links of a mounted Secret
    for (const name of names.filter((n) => !n.startsWith('.')).sort()) {
      const path = join(this.opts.dir, name);
      try {
        if (!(await stat(path)).isFile()) continue;
        present.set(name, await readFile(path, 'utf8'));
      } catch {
        // removed between readdir and read: the next scan sees it gone
      }
    }
    return present;
  }

  private async reconcileFile(name: string, text: string): Promise<void> {
    const hash = createHash('sha256').update(text).digest('hex');
    const f = this.files.get(name);
    // a duplicate is looked at again: the file it clashed with may be gone
    const duplicate = f?.refusal?.error.code === 'ERR_BUNDLE_DUPLICATE' && !f.remote;
    if (f && f.hash === hash && !duplicate) return;
    const ca =
      typeof this.opts.trustedCaPem === 'function'
        ? this.opts.trustedCaPem()
        : this.opts.trustedCaPem;
    const verified = await verifyBundle(text, ca);
    const state: FileState = { hash, ...(f?.remote ? { remote: f.remote } : {}) };
    this.files.set(name, state);
    if (!verified.ok) {
      state.refusal = {
        ...claimedCluster(text, name),
        error: errorOf(verified.error.code, verified.error.detail),
      };
      this.opts.log.warn(
        { file: name, code: verified.error.code, detail: verified.error.detail },
        'connection bundle refused',
      );
      return;
    }
    const refusal = this.conflict(name, verified.value);
    if (refusal) {
      state.refusal = {
        cluster: verified.value.cluster,
        clusterId: verified.value.clusterId,
        error: refusal,
      };
      this.opts.log.warn(
        { file: name, code: refusal.code, detail: refusal.message },
        'connection bundle refused',
      );
      return;
    }
    await this.connect(name, state, verified.value);
  }

  /** A bundle for the local cluster, or for a cluster another file already connects. */
  private conflict(name: string, b: ConnectionBundle): RemoteError | undefined {
    if (b.cluster === this.opts.mesh.local.name) {
      return errorOf(
        'ERR_BUNDLE_LOCAL_CLUSTER',
        `${name} is a bundle of the local cluster ${b.cluster}`,
      );
    }
    for (const [other, f] of this.files) {
      if (other !== name && f.remote?.name === b.cluster) {
        return errorOf(
          'ERR_BUNDLE_DUPLICATE',
          `${name} and ${other} are both bundles of ${b.cluster}: remove one`,
        );
      }
    }
    return undefined;
  }

  private async connect(name: string, state: FileState, bundle: ConnectionBundle): Promise<void> {
    const old = state.remote;
    if (old && old.name === bundle.cluster && old.clusterId === bundle.clusterId) {
      this.opts.log.info({ cluster: bundle.cluster, file: name }, 'bundle changed: reconnecting');
      old.replaceBundle(bundle);
      return;
    }
    // another cluster now behind this file: the old one's state must go
    if (old) await old.drain();
    const { dir: _d, trustedCaPem: _c, rescanMs: _r, ...common } = this.opts;
    state.remote = new RemoteCluster({ ...common, bundle, source: name });
    state.remote.start();
  }
}

function errorOf(code: string, message: string): RemoteError {
  return { code, message, at: new Date().toISOString() };
}

/** What an unverified bundle claims to be, for status only. */
function claimedCluster(text: string, file: string): { cluster: string; clusterId: number } {
  try {
    const b = decodeJwt(text.trim())['bundle'] as { cluster?: unknown; clusterId?: unknown };
    return {
      cluster: typeof b?.cluster === 'string' ? b.cluster : file,
      clusterId: typeof b?.clusterId === 'number' ? b.clusterId : 0,
    };
  } catch {
    return { cluster: file, clusterId: 0 };
  }
}

function refusedStatus(file: string, r: NonNullable<FileState['refusal']>): RemoteStatus {
  return {
    cluster: r.cluster,
    clusterId: r.clusterId,
    source: file,
    state: 'refused',
    connected: false,
    reason: r.error.message,
    lastError: r.error,
    synced: { ...NO_SYNC },
    ready: false,
    counts: { identities: 0, endpoints: 0, nodes: 0, services: 0 },
    rejected: {},
    connections: 0,
  };
}
