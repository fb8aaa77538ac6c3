// Helpers of the service end-to-end tests: traffic tools run inside lab pods (the datapath
// tests' net-tool.py, whose "whoami" question the lab echo server answers with the pod's IP),
// the service table as `isthmus service list` reads it, and manifests.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listServices } from '../../cli/service.ts';
import type { ServiceView } from '../../agent/services/types.ts';
import { until } from '../e2e-policy/support.ts';

const tool = join(dirname(fileURLToPath(import.meta.url)), '../../agent/datapath/test/net-tool.py');

export type Line = Record<string, unknown>;

/** Runs net-tool.py in a pod's namespace to completion (bounded); resolves with every line. */
export function podTool(netnsPath: string, args: string[], timeoutMs = 30_000): Promise<Line[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn('nsenter', [`--net=${netnsPath}`, '/usr/bin/python3', tool, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      const lines = out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line);
      if (code !== 0 || lines.length === 0)
        reject(new Error(`net-tool ${args.join(' ')} exited ${code}: ${err.trim()}`));
      else resolve(lines);
    });
  });
}

export const lastLine = async (p: Promise<Line[]>): Promise<Line> => (await p).at(-1)!;

/** The service as the cluster's agent shows it. */
export async function serviceView(
  lab: string,
  cluster: string,
  ns: string,
  name: string,
): Promise<ServiceView | undefined> {
  const all = await listServices({ lab, cluster });
  return all[0]?.services.find((s) => s.namespace === ns && s.name === name);
}

/** Waits until the agent's table has exactly these backend IPs in use for the service, then a
 * little longer for the coalesced map write on every node. */
export async function waitForBackends(
  lab: string,
  ns: string,
  name: string,
  ips: string[],
  timeoutMs = 60_000,
): Promise<ServiceView> {
  const want = [...ips].sort().join(',');
  const view = await until(
    `service ${ns}/${name} backends ${want}`,
    async () => {
      const v = await serviceView(lab, 'c1', ns, name).catch(() => undefined);
      const inUse = v?.backends
        .filter((b) => b.inUse)
        .map((b) => b.addr)
        .sort()
        .join(',');
      return v && inUse === want ? v : undefined;
    },
    timeoutMs,
    300,
  );
  await new Promise((r) => setTimeout(r, 500));
  return view;
}

export function serviceYaml(ns: string, name: string, selector: Record<string, string>): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  selector: ${JSON.stringify(selector)}
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: http}
  - {name: dns, port: 53, protocol: UDP, targetPort: 8053}
---
`;
}

export const ECHO_PORTS = [
  { port: 8080, protocol: 'TCP' as const, name: 'http' },
  { port: 8053, protocol: 'UDP' as const, name: 'dns' },
];
