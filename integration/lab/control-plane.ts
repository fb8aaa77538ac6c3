// A cluster's control plane in its `<lab>-<cluster>-cp` namespace: a real etcd (data on the
// lab's tmpfs run dir, client API on a unix socket) and the embedded Kubernetes API server
// (TCP on the control plane's underlay IP for agents and kubelets in node namespaces, plus a unix
// socket for root-namespace tools). Both are recorded by PID; downLab ends them like the rest.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { CLIENT_SOCKET } from '../etcd/etcd-runner.ts';
import { startEtcd } from '../etcd/index.ts';
import { kubectlConfigYaml } from '../apiserver/client.ts';
import type { ClusterPlan, LabPlan } from './config.ts';
import { spawnDetached } from './processes.ts';
import { nodeEntry, repoRoot, writeRecord, type LabRecord } from './record.ts';

export const API_PORT = 6443;

export interface ControlPlanePaths {
  dir: string;
  etcdDir: string;
  /** the API server's unix socket (reachable from every namespace) */
  apiSocket: string;
  /** kubeconfig naming the API server's TCP address (usable from any lab namespace) */
  kubeconfig: string;
  /** `ip:port` of the API server on the underlay */
  apiAddress: string;
  apiLog: string;
  kubeletLog: string;
  /** the cluster kubelet's state: the pods it runs (see integration/kubelet) */
  kubeletState: string;
  kubeletConfig: string;
}

export function controlPlanePaths(plan: LabPlan, cluster: ClusterPlan): ControlPlanePaths {
  const dir = join(plan.runDir, `${cluster.name}-cp`);
  return {
    dir,
    etcdDir: join(dir, 'etcd'),
    apiSocket: join(dir, 'apiserver.sock'),
    kubeconfig: join(dir, 'kubeconfig'),
    apiAddress: `${cluster.controlPlane.ip}:${API_PORT}`,
    apiLog: join(dir, 'apiserver.log'),
    kubeletLog: join(dir, 'kubelet.log'),
    kubeletState: join(dir, 'kubelet-pods.json'),
    kubeletConfig: join(dir, 'kubelet.json'),
  };
}

export interface StartedControlPlane {
  cluster: string;
  etcdPid: number;
  apiServerPid: number;
}

/** Starts etcd and the API server of one cluster and writes its kubeconfig. */
export async function startControlPlane(
  plan: LabPlan,
  cluster: ClusterPlan,
  onPid: (pid: number) => void,
): Promise<StartedControlPlane> {
  const paths = controlPlanePaths(plan, cluster);
  mkdirSync(paths.dir, { recursive: true });
  const etcd = await startEtcd({
    name: `${plan.name}-${cluster.name}`,
    netns: cluster.controlPlane.netns,
    baseDir: paths.etcdDir,
  });
  onPid(etcd.pid);
  const api = spawnApiServer(plan, cluster, etcd.socketEndpoint);
  onPid(api.pid);
  await waitForApi(paths.apiSocket, api.exited, 30_000, paths.apiLog);
  writeFileSync(paths.kubeconfig, kubectlConfigYaml(paths.apiAddress));
  for (const ns of ['default', 'kube-system'])
    await apiRequest(paths.apiSocket, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns },
    }).catch((err: ApiRequestError) => {
      if (err.status !== 409) throw err;
    });
  return { cluster: cluster.name, etcdPid: etcd.pid, apiServerPid: api.pid };
}

/** The cluster's API server process over its etcd (detached; logs to the control plane dir). */
function spawnApiServer(
  plan: LabPlan,
  cluster: ClusterPlan,
  etcdEndpoint: string,
): ReturnType<typeof spawnDetached> {
  const paths = controlPlanePaths(plan, cluster);
  return spawnDetached(
    [
      'nsenter',
      `--net=/run/netns/${cluster.controlPlane.netns}`,
      '--',
      ...nodeEntry('integration/apiserver/main.ts'),
      '--etcd',
      etcdEndpoint,
      '--socket',
      paths.apiSocket,
      '--listen',
      paths.apiAddress,
      '--service-cidr',
      cluster.serviceCIDR,
    ],
    paths.apiLog,
    repoRoot(),
  );
}

/**
 * Starts the API server of a cluster again over its running etcd (after its process was ended:
 * the restart tests). Returns the new PID once it answers.
 */
export async function restartApiServer(plan: LabPlan, cluster: ClusterPlan): Promise<number> {
  const paths = controlPlanePaths(plan, cluster);
  const api = spawnApiServer(plan, cluster, `unix://${join(paths.etcdDir, CLIENT_SOCKET)}`);
  await waitForApi(paths.apiSocket, api.exited, 30_000, paths.apiLog);
  return api.pid;
}

async function waitForApi(
  socket: string,
  exited: Promise<number | null>,
  timeoutMs: number,
  log: string,
): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gone) {
    if (await apiHealthy(socket)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `the API server ${gone ? 'exited' : `was not ready after ${timeoutMs} ms`}; see ${log}`,
  );
}

export async function apiHealthy(socket: string): Promise<boolean> {
  return apiRequest(socket, 'GET', '/healthz', undefined, 2000).then(
    () => true,
    () => false,
  );
}

export class ApiRequestError extends Error {
  readonly code = 'ISTHMUS_LAB_API';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * One JSON request to a lab API server, over its unix socket or `ip:port` (from inside a lab
 * namespace). Non-2xx answers throw ApiRequestError with the status.
 */
export function apiRequest(
  target: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = 10_000,
  contentType = 'application/json',
): Promise<any> {
  const where = target.startsWith('/')
    ? { socketPath: target }
    : { host: target.split(':')[0], port: Number(target.split(':')[1]) };
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...where,
        method,
        path,
        timeout: timeoutMs,
        headers: { Accept: 'application/json', 'Content-Type': contentType },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            /* not JSON (e.g. healthz) */
          }
          if (status >= 200 && status < 300) return resolve(parsed);
          const msg = (parsed as { message?: string } | undefined)?.message ?? text;
          reject(new ApiRequestError(`${method} ${path}: ${status} ${msg}`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', (err) => reject(new ApiRequestError(`${method} ${path}: ${err.message}`, 0)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Starts every cluster's control plane, recording PIDs as they appear (for teardown). */
export async function startControlPlanes(
  record: LabRecord,
  progress: (line: string) => void,
): Promise<void> {
  record.controlPlanes = [];
  for (const cluster of record.plan.clusters) {
    progress(`control plane ${cluster.name}: etcd and API server in ${cluster.controlPlane.netns}`);
    const entry = { cluster: cluster.name, etcdPid: 0, apiServerPid: 0 };
    record.controlPlanes.push(entry);
    await startControlPlane(record.plan, cluster, (pid) => {
      if (!entry.etcdPid) entry.etcdPid = pid;
      else entry.apiServerPid = pid;
      writeRecord(record);
    });
    progress(
      `control plane ${cluster.name}: API server ready at ${controlPlanePaths(record.plan, cluster).apiAddress}`,
    );
  }
}
