// Starts the lab API server as its own process inside a network namespace (so its TCP listener
// lives there) and waits for its ready line; stops it by PID.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export interface ApiServerProcessOptions {
  netns: string;
  /** etcd endpoint as the etcd3 client takes it, e.g. "unix:///dev/shm/x/client.sock:0". */
  etcd: string;
  socketPath?: string;
  tcpAddress?: string;
  serviceCidr?: string;
  etcdTls?: { caFile: string; certFile?: string; keyFile?: string; serverName?: string };
  startTimeoutMs?: number;
}

export interface ApiServerProcess {
  readonly pid: number;
  stop(): Promise<void>;
}

export class ApiServerProcessError extends Error {
  constructor(
    readonly code: 'APISERVER_START_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'ApiServerProcessError';
  }
}

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.ts');

export async function startApiServerProcess(o: ApiServerProcessOptions): Promise<ApiServerProcess> {
  const args = [
    `--net=/run/netns/${o.netns}`,
    process.execPath,
    '--import',
    'tsx',
    MAIN,
    '--etcd',
    o.etcd,
  ];
  if (o.socketPath) args.push('--socket', o.socketPath);
  if (o.tcpAddress) args.push('--listen', o.tcpAddress);
  if (o.serviceCidr) args.push('--service-cidr', o.serviceCidr);
  if (o.etcdTls) {
    args.push('--etcd-ca', o.etcdTls.caFile);
    if (o.etcdTls.certFile) args.push('--etcd-cert', o.etcdTls.certFile);
    if (o.etcdTls.keyFile) args.push('--etcd-key', o.etcdTls.keyFile);
    if (o.etcdTls.serverName) args.push('--etcd-server-name', o.etcdTls.serverName);
  }
  const child = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  let stderr = '';
  // Only the tail matters (start-up failures); a long-lived server must not grow this.
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-16_384)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGTERM');
      const kill = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 5000);
      await exited;
      clearTimeout(kill);
    }
  };
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), o.startTimeoutMs ?? 20_000);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line.includes('"ready":true'));
    });
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    await stop();
    throw new ApiServerProcessError(
      'APISERVER_START_FAILED',
      `the lab API server did not start:\n${stderr}`,
    );
  }
  child.stdout.resume();
  return { pid, stop };
}
