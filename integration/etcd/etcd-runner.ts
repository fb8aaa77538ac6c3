// Runs a real etcd (Debian etcd 3.4) as a child process inside a network namespace the caller
// owns, with its data on tmpfs and its client API on a unix socket reachable from every
// namespace, plus optionally a TCP address inside the namespace for lab processes elsewhere.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';

/** TLS for the client listeners; the certificates engineer issues the files. */
export interface EtcdTlsOptions {
  certFile: string;
  keyFile: string;
  /** CA that signs client certificates; with clientCertAuth, clients must present one. */
  trustedCaFile?: string;
  clientCertAuth?: boolean;
}

/** How the runner's own clients (readiness, compaction, client()) authenticate to a TLS etcd. */
export interface EtcdClientTls {
  caFile: string;
  certFile?: string;
  keyFile?: string;
  /** Name to verify in the server certificate (the unix socket has no host name). */
  serverName?: string;
}

export interface EtcdOptions {
  /** Unique name prefix: names the member, the data dir and the socket directory. */
  name: string;
  /** Network namespace name under /run/netns; etcd runs inside it. */
  netns: string;
  /** Optional TCP listener inside the namespace, e.g. "10.99.0.2:2379". */
  tcpAddress?: string;
  /** Directory on tmpfs holding data and sockets; default /dev/shm/<name>. */
  baseDir?: string;
  tls?: EtcdTlsOptions;
  /** Required with tls: credentials for the runner's clients. */
  clientTls?: EtcdClientTls;
  /** Interval of watch progress notifications (used as watch bookmarks). */
  progressNotifyInterval?: string;
  startTimeoutMs?: number;
  /** Extra etcd flags, e.g. ["--auth-token", "simple"]. */
  extraArgs?: string[];
}

export interface RunningEtcd {
  readonly pid: number;
  /** Data, sockets and etcd.log; removed by stop(). */
  readonly baseDir: string;
  /** Path of the client socket file (reachable from every network namespace). */
  readonly socketPath: string;
  /** Host string for the etcd3 client: "unix:///…". */
  readonly socketEndpoint: string;
  /** "http(s)://ip:port" inside the namespace, when tcpAddress was given. */
  readonly tcpEndpoint: string | undefined;
  /** A new etcd3 client over the unix socket (caller closes it). */
  client(extra?: Partial<IOptions>): Etcd3;
  /** Compacts history up to `revision` (default: the current revision); returns it. */
  compact(revision?: number): Promise<number>;
  stop(): Promise<void>;
}

export class EtcdRunnerError extends Error {
  constructor(
    readonly code: 'ETCD_START_FAILED' | 'ETCD_NOT_READY' | 'ETCD_BAD_OPTIONS',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EtcdRunnerError';
  }
}

// etcd requires host:port URLs, so a unix socket is named "<file>:<port>" relative to its cwd.
export const CLIENT_SOCKET = 'client.sock:0';
const PEER_SOCKET = 'peer.sock:0';

export async function startEtcd(options: EtcdOptions): Promise<RunningEtcd> {
  validateOptions(options);
  const baseDir = options.baseDir ?? path.join('/dev/shm', options.name);
  await mkdir(path.join(baseDir, 'data'), { recursive: true, mode: 0o700 });
  const socketPath = path.join(baseDir, CLIENT_SOCKET);
  const tlsScheme = options.tls !== undefined;
  const args = etcdArgs(options, baseDir, tlsScheme);
  const logFile = path.join(baseDir, 'etcd.log');
  // etcd logs straight to a file on the tmpfs (no buffering in this process for its lifetime).
  const logFd = openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=/run/netns/${options.netns}`, 'etcd', ...args], {
    cwd: baseDir,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const logTail = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '');
  const pid = child.pid;
  if (pid === undefined) {
    throw new EtcdRunnerError('ETCD_START_FAILED', `could not spawn etcd for ${options.name}`);
  }
  const running = makeRunning(options, child, pid, baseDir, socketPath);
  try {
    await waitReady(running, child, options.startTimeoutMs ?? 20_000, logTail);
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}

function validateOptions(o: EtcdOptions): void {
  if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(o.name)) {
    throw new EtcdRunnerError(
      'ETCD_BAD_OPTIONS',
      `etcd name "${o.name}" must be lowercase alphanumerics and dashes`,
    );
  }
  if (!existsSync(`/run/netns/${o.netns}`)) {
    throw new EtcdRunnerError(
      'ETCD_BAD_OPTIONS',
      `network namespace "${o.netns}" does not exist; create it first`,
    );
  }
  if (o.tls && !o.clientTls) {
    throw new EtcdRunnerError(
      'ETCD_BAD_OPTIONS',
      'tls needs clientTls too, so the runner can check readiness and compact',
    );
  }
  if (o.tcpAddress !== undefined && !/^[0-9.]+:\d+$/.test(o.tcpAddress)) {
    throw new EtcdRunnerError(
      'ETCD_BAD_OPTIONS',
      `tcpAddress "${o.tcpAddress}" must be "ipv4:port"`,
    );
  }
}

function etcdArgs(o: EtcdOptions, baseDir: string, tls: boolean): string[] {
  const unixUrl = `${tls ? 'unixs' : 'unix'}://${CLIENT_SOCKET}`;
  const tcpUrl =
    o.tcpAddress !== undefined ? `${tls ? 'https' : 'http'}://${o.tcpAddress}` : undefined;
  const clientUrls = [unixUrl, ...(tcpUrl ? [tcpUrl] : [])].join(',');
  const peerUrl = `unix://${PEER_SOCKET}`;
  const args = [
    `--name=${o.name}`,
    `--data-dir=${path.join(baseDir, 'data')}`,
    `--listen-client-urls=${clientUrls}`,
    `--advertise-client-urls=${tcpUrl ?? unixUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=${o.name}=${peerUrl}`,
    `--initial-cluster-state=new`,
    `--experimental-watch-progress-notify-interval=${o.progressNotifyInterval ?? '5s'}`,
    '--log-level=warn',
    '--logger=zap',
  ];
  if (o.tls) {
    args.push(`--cert-file=${o.tls.certFile}`, `--key-file=${o.tls.keyFile}`);
    if (o.tls.trustedCaFile) args.push(`--trusted-ca-file=${o.tls.trustedCaFile}`);
    if (o.tls.clientCertAuth) args.push('--client-cert-auth');
  }
  return [...args, ...(o.extraArgs ?? [])];
}

function clientCredentials(tls: EtcdClientTls | undefined): Partial<IOptions> {
  if (!tls) return {};
  return {
    credentials: {
      rootCertificate: readFileSync(tls.caFile),
      ...(tls.certFile ? { certChain: readFileSync(tls.certFile) } : {}),
      ...(tls.keyFile ? { privateKey: readFileSync(tls.keyFile) } : {}),
    },
    ...(tls.serverName ? { grpcOptions: { 'grpc.ssl_target_name_override': tls.serverName } } : {}),
  };
}

function makeRunning(
  o: EtcdOptions,
  child: ChildProcess,
  pid: number,
  baseDir: string,
  socketPath: string,
): RunningEtcd {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped: Promise<void> | undefined;
  const scheme = o.tls ? 'https' : 'http';
  const running: RunningEtcd = {
    pid,
    baseDir,
    socketPath,
    socketEndpoint: `unix://${socketPath}`,
    tcpEndpoint: o.tcpAddress !== undefined ? `${scheme}://${o.tcpAddress}` : undefined,
    client: (extra) =>
      new Etcd3({ hosts: `unix://${socketPath}`, ...clientCredentials(o.clientTls), ...extra }),
    compact: (revision) => compactEtcd(running, revision),
    stop: () => (stopped ??= stopProcess(pid, child, exited, baseDir)),
  };
  return running;
}

async function stopProcess(
  pid: number,
  child: ChildProcess,
  exited: Promise<void>,
  baseDir: string,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    process.kill(pid, 'SIGTERM');
    const killTimer = setTimeout(
      () => child.exitCode === null && process.kill(pid, 'SIGKILL'),
      5000,
    );
    await exited;
    clearTimeout(killTimer);
  }
  await rm(baseDir, { recursive: true, force: true });
}

async function waitReady(
  etcd: RunningEtcd,
  child: ChildProcess,
  timeoutMs: number,
  logText: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new EtcdRunnerError('ETCD_START_FAILED', `etcd exited during start-up:\n${logText()}`);
    }
    if (existsSync(etcd.socketPath)) {
      const client = etcd.client();
      try {
        await client.maintenance.status();
        return;
      } catch (err) {
        lastErr = err;
      } finally {
        client.close();
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new EtcdRunnerError(
    'ETCD_NOT_READY',
    `etcd not ready after ${timeoutMs} ms:\n${logText()}`,
    {
      cause: lastErr,
    },
  );
}

async function compactEtcd(etcd: RunningEtcd, revision?: number): Promise<number> {
  const client = etcd.client();
  try {
    const rev =
      revision ??
      Number((await client.kv.range({ key: Buffer.from('\0'), limit: 1 })).header.revision);
    await client.kv.compact({ revision: rev, physical: true });
    return rev;
  } finally {
    client.close();
  }
}
