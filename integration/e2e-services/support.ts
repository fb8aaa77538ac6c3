// Helpers of the service end-to-end tests: the service table as `isthmus service list` reads it,
// and manifests. Traffic inside pods goes through integration/lab/net-tool.ts.
import { listServices } from '../../cli/service.ts';
import type { ServiceView } from '../../agent/services/types.ts';
import { until } from '../e2e-policy/support.ts';

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
