// Lab pods, made the way kubelet makes them: a network namespace, the CNI plugin (compiled
// JavaScript, run per pod) called with the CNI_* environment and the network config, then the
// workload: the C echo server serving every declared port inside the pod's namespace.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { endpointSocketPath } from '../../agent/daemon.ts';
import type { NodePlan } from './config.ts';
import { addNetns, deleteNetns, netnsPath } from './netns.ts';
import { endProcess } from './processes.ts';
import { repoRoot, type LabPod, type PodPort } from './record.ts';

export interface CniOutcome {
  code: number;
  result: Record<string, unknown>;
  stderr: string;
}

export const toolPath = (tool: 'echo' | 'probe'): string =>
  join(repoRoot(), 'integration/lab/tools/bin', tool);

/** The compiled plugin; refuses a missing or stale build so tests never run old code. */
export function cniPluginPath(): string {
  const root = repoRoot();
  const plugin = join(root, 'dist/agent/cni/main.js');
  if (!existsSync(plugin))
    throw Object.assign(new Error(`${plugin} is missing: run \`npm run build\``), {
      code: 'ISTHMUS_CNI_NOT_BUILT',
    });
  const built = statSync(plugin).mtimeMs;
  const sources = [
    'agent/cni/main.ts',
    'agent/cni/spec.ts',
    'agent/endpoint/client.ts',
    'agent/endpoint/types.ts',
  ];
  for (const src of sources) {
    if (statSync(join(root, src)).mtimeMs > built)
      throw Object.assign(new Error(`${plugin} is older than ${src}: run \`npm run build\``), {
        code: 'ISTHMUS_CNI_STALE',
      });
  }
  return plugin;
}

/** Runs the CNI plugin once, as a container runtime would. */
export function invokeCni(env: Record<string, string>, stdin: string): Promise<CniOutcome> {
  return new Promise((resolve, reject) => {
    const plugin = cniPluginPath();
    const child = spawn(process.execPath, [plugin], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      let result: Record<string, unknown> = {};
      if (out.trim()) {
        try {
          result = JSON.parse(out) as Record<string, unknown>;
        } catch {
          result = { unparsable: out };
        }
      }
      resolve({ code: code ?? -1, result, stderr: err });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

export function netConf(node: NodePlan, ports: PodPort[] = []): string {
  const namedPorts = ports
    .filter((p) => p.name)
    .map((p) => ({ name: p.name!, port: p.port, protocol: p.protocol }));
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'isthmus',
    type: 'isthmus',
    agentSocket: endpointSocketPath(node.stateDir),
    runtimeConfig: { namedPorts },
  });
}

export function cniEnv(
  command: string,
  pod: { containerId: string; netnsPath: string; namespace: string; name: string },
): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: pod.netnsPath,
    CNI_IFNAME: 'eth0',
    CNI_PATH: join(repoRoot(), 'dist/agent/cni'),
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
  };
}

export interface PodSpec {
  cluster: string;
  /** node name; defaults to the least loaded node of the cluster */
  node?: string;
  namespace: string;
  name: string;
  ports?: PodPort[];
}

/** Creates a pod on `node`; on failure removes whatever it created and throws. */
export async function createPod(lab: string, node: NodePlan, spec: PodSpec): Promise<LabPod> {
  const netns = `${lab}-${spec.cluster}-${spec.namespace}-${spec.name}`.replace(
    /[^a-zA-Z0-9.-]/g,
    '-',
  );
  const pod: LabPod = {
    cluster: spec.cluster,
    node: node.name,
    namespace: spec.namespace,
    name: spec.name,
    netns,
    netnsPath: netnsPath(netns),
    ip: '',
    containerId: createHash('sha256')
      .update(`${netns}/${randomBytes(8).toString('hex')}`)
      .digest('hex'),
    ports: spec.ports ?? [],
  };
  await addNetns(netns);
  try {
    const add = await invokeCni(cniEnv('ADD', pod), netConf(node, pod.ports));
    const ips = add.result.ips as Array<{ address: string }> | undefined;
    if (add.code !== 0 || !ips?.[0])
      throw new Error(
        `CNI ADD for pod ${spec.namespace}/${spec.name} failed: ${JSON.stringify(add.result)} ${add.stderr}`,
      );
    pod.ip = ips[0].address.split('/')[0]!;
    if (pod.ports.length) pod.echoPid = await startEcho(pod);
    return pod;
  } catch (err) {
    await destroyPod(lab, node, pod);
    throw err;
  }
}

/** CNI DEL, end the echo server, delete the namespace. Each step tolerates what is gone. */
export async function destroyPod(lab: string, node: NodePlan, pod: LabPod): Promise<void> {
  if (pod.echoPid) await endProcess(pod.echoPid, pod.netnsPath);
  await invokeCni(cniEnv('DEL', pod), netConf(node)).catch(() => undefined);
  await deleteNetns(pod.netns);
}

/** Starts the echo server in the pod's namespace and waits until it has bound every port. */
export function startEcho(pod: LabPod): Promise<number> {
  const specs = pod.ports.map((p) => `${p.protocol.toLowerCase()}:${p.port}`);
  return new Promise((resolve, reject) => {
    const child = spawn(toolPath('echo'), ['--netns', pod.netnsPath, ...specs], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(
      () =>
        reject(new Error(`echo server of ${pod.namespace}/${pod.name} did not start within 10 s`)),
      10_000,
    );
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!out.includes('ready')) return;
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
      resolve(child.pid!);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(
        new Error(`echo server of ${pod.namespace}/${pod.name} exited with ${code}: ${err.trim()}`),
      );
    });
  });
}
