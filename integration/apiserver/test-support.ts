// Fixtures for the API server's privileged tests: a namespace, a real etcd in it, and the API
// server either in-process (unix socket) or as a process with TCP inside the namespace.
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEtcd, type EtcdOptions, type RunningEtcd } from '../etcd/etcd-runner.ts';
import { createTestNetns, type TestNetns } from '../etcd/test-netns.ts';
import { startApiServer } from './server.ts';
import { startApiServerProcess } from './apiserver-process.ts';
import { UnixSocketKubeConfig, kubectlConfigYaml } from './client.ts';

export interface ControlPlane {
  ns: TestNetns;
  etcd: RunningEtcd;
  socketPath: string;
  kubeConfig: UnixSocketKubeConfig;
  /** Raw HTTP request over the unix socket; resolves with status and parsed JSON body. */
  request(
    method: string,
    urlPath: string,
    body?: unknown,
    contentType?: string,
  ): Promise<{ status: number; body: any }>;
}

export async function startControlPlane(
  t: ExecutionContext,
  opts: { etcd?: Partial<EtcdOptions>; serviceCidr?: string } = {},
): Promise<ControlPlane> {
  const ns = createTestNetns('h4api');
  t.teardown(() => ns.remove());
  const etcd = await startEtcd({
    name: `h4api-${randomBytes(3).toString('hex')}`,
    netns: ns.name,
    ...opts.etcd,
  });
  t.teardown(() => etcd.stop());
  const client = etcd.client();
  t.teardown(() => client.close());
  const socketPath = path.join(etcd.baseDir, 'apiserver.sock');
  const server = await startApiServer({
    etcd: client,
    socketPath,
    ...(opts.serviceCidr ? { serviceCidr: opts.serviceCidr } : {}),
  });
  t.teardown(() => server.stop());
  const kubeConfig = new UnixSocketKubeConfig(socketPath);
  t.teardown(() => kubeConfig.close());
  return {
    ns,
    etcd,
    socketPath,
    kubeConfig,
    request: (m, p, b, ct) => rawRequest(socketPath, m, p, b, ct),
  };
}

export async function rawRequest(
  socketPath: string,
  method: string,
  urlPath: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: any }> {
  const { request } = await import('node:http');
  const payload =
    body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  // Content-Length always: Node frames no body on DELETE otherwise.
  const headers = {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(payload ?? ''),
  };
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: urlPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // keep the text (watch streams are JSON lines)
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface KubectlControlPlane extends ControlPlane {
  tcpAddress: string;
  /** Stops the API server process and starts a new one on the same etcd and addresses. */
  restartApiServer(): Promise<void>;
  /** Runs the machine's kubectl inside the namespace against the server's TCP address. */
  kubectl(
    args: string[],
    stdin?: string,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** The API server as a separate process in the namespace, with TCP there for kubectl. */
export async function startKubectlControlPlane(t: ExecutionContext): Promise<KubectlControlPlane> {
  const ns = createTestNetns('h4kctl');
  t.teardown(() => ns.remove());
  const etcd = await startEtcd({
    name: `h4kctl-${randomBytes(3).toString('hex')}`,
    netns: ns.name,
  });
  t.teardown(() => etcd.stop());
  const socketPath = path.join(etcd.baseDir, 'apiserver.sock');
  const tcpAddress = `${ns.address}:6443`;
  const processOptions = {
    netns: ns.name,
    etcd: etcd.socketEndpoint,
    socketPath,
    tcpAddress,
    serviceCidr: '10.213.128.0/24',
  };
  const proc = await startApiServerProcess(processOptions);
  let current = proc;
  t.teardown(() => current.stop());
  const kubeConfig = new UnixSocketKubeConfig(socketPath);
  t.teardown(() => kubeConfig.close());
  const kubeconfigPath = path.join(etcd.baseDir, 'kubeconfig');
  await writeFile(kubeconfigPath, kubectlConfigYaml(tcpAddress));
  const kubectl = (args: string[], stdin?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(
        'nsenter',
        [`--net=/run/netns/${ns.name}`, '/usr/bin/kubectl', ...args],
        {
          env: {
            PATH: process.env['PATH'] ?? '/usr/bin',
            KUBECONFIG: kubeconfigPath,
            HOME: etcd.baseDir,
          },
          timeout: 60_000,
        },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      if (stdin !== undefined) child.stdin?.end(stdin);
    });
  return {
    ns,
    etcd,
    socketPath,
    kubeConfig,
    tcpAddress,
    kubectl,
    request: (m, p, b, ct) => rawRequest(socketPath, m, p, b, ct),
    async restartApiServer() {
      await current.stop();
      current = await startApiServerProcess(processOptions);
    },
  };
}

export interface WatchEvent {
  type: string;
  object: any;
}

export interface OpenWatch {
  /** Resolves with the next event, or rejects after timeoutMs. */
  next(timeoutMs?: number): Promise<WatchEvent>;
  /** Collects events until none arrives for quietMs. */
  drain(quietMs?: number): Promise<WatchEvent[]>;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

/** A raw watch over the unix socket, reading kube-apiserver's JSON-lines stream. */
export async function openWatch(socketPath: string, urlPath: string): Promise<OpenWatch> {
  const { request } = await import('node:http');
  const queue: WatchEvent[] = [];
  const waiters: ((e: WatchEvent) => void)[] = [];
  let endResolve!: () => void;
  const ended = new Promise<void>((r) => (endResolve = r));
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = request({ socketPath, path: urlPath }, resolve);
    req.on('error', reject);
    req.end();
  });
  let buf = '';
  res.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const ev = JSON.parse(buf.slice(0, i)) as WatchEvent;
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w(ev);
      else queue.push(ev);
    }
  });
  res.on('end', () => endResolve());
  res.on('close', () => endResolve());
  const next = (timeoutMs = 5000) =>
    new Promise<WatchEvent>((resolve, reject) => {
      const queued = queue.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(done), 1);
        reject(new Error(`no watch event within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (e: WatchEvent) => {
        clearTimeout(timer);
        resolve(e);
      };
      waiters.push(done);
    });
  return {
    next,
    async drain(quietMs = 300) {
      const out: WatchEvent[] = [];
      for (;;) {
        try {
          out.push(await next(quietMs));
        } catch {
          return out;
        }
      }
    },
    ended,
    close: () => res.destroy(),
  };
}
