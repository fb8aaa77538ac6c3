// Helpers of the global-service tests: manifests of a global echo service, the backends a
// cluster's agent has in use, and connections counted per cluster by the "whoami" answer.
import type { ServiceView } from '../../agent/services/types.ts';
import { listServices } from '../../cli/service.ts';
import { until } from '../e2e-policy/support.ts';
import { lastLine, netTool } from '../lab/net-tool.ts';
import type { LabPod } from '../lab/record.ts';

export const NS = 'gsvc';

export function globalServiceYaml(annotations: Record<string, string>): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: ${NS}
  annotations: ${JSON.stringify({ 'service.cilium.io/global': 'true', ...annotations })}
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: http}
  - {name: dns, port: 53, protocol: UDP, targetPort: 8053}
---
`;
}

/** The echo service as the first agent of `cluster` shows it. */
export async function echoView(lab: string, cluster: string): Promise<ServiceView | undefined> {
  const all = await listServices({ lab, cluster }).catch(() => []);
  return all[0]?.services.find((s) => s.namespace === NS && s.name === 'echo');
}

export const inUse = (v: ServiceView | undefined): string[] =>
  (v?.backends ?? [])
    .filter((b) => b.inUse)
    .map((b) => b.addr)
    .sort();

/** Waits until `cluster`'s agent uses exactly these backends, then for the map write on every node. */
export async function waitForInUse(
  lab: string,
  cluster: string,
  ips: string[],
  timeoutMs = 60_000,
): Promise<number> {
  const want = [...ips].sort().join(',');
  const started = Date.now();
  await until(
    `${cluster}: echo backends in use ${want}`,
    async () => (inUse(await echoView(lab, cluster)).join(',') === want ? true : undefined),
    timeoutMs,
    100,
  );
  const took = Date.now() - started;
  await new Promise((r) => setTimeout(r, 500));
  return took;
}

export type Counts = { counts: Record<string, number>; errors: Record<string, number> };

/** `n` new TCP connections from a pod to vip:80, answers counted by backend IP. */
export const who = (from: LabPod, vip: string, n: number, timeout = 2): Promise<Counts> =>
  lastLine(
    netTool(from.netnsPath, ['tcp-who', vip, '80', String(n), String(timeout)], 120_000),
  ) as Promise<Counts>;

/** Answers per cluster, by the pod CIDR prefix of each cluster ("10.1." / "10.2."). */
export function perCluster(c: Counts): { c1: number; c2: number; other: number } {
  const out = { c1: 0, c2: 0, other: 0 };
  for (const [ip, n] of Object.entries(c.counts)) {
    if (ip.startsWith('10.1.')) out.c1 += n;
    else if (ip.startsWith('10.2.')) out.c2 += n;
    else out.other += n;
  }
  return out;
}
