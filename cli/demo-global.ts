// The demo's global-service step (labs of 2+ clusters): the same Service shop-global/echo in the
// first two clusters, annotated global, two echo backends in each, a client in the first. The
// client's connections to its ClusterIP are answered from both clusters; then the first
// cluster's backends are deleted and the answers come from the other cluster only (failover).
import { listServices } from './service.ts';
import { kubectlCapture } from '../integration/lab/kubectl.ts';
import { LabError } from '../integration/lab/lab.ts';
import type { LabPlan } from '../integration/lab/config.ts';
import { readRecord, type LabPod } from '../integration/lab/record.ts';
import { labPods } from '../integration/lab/status.ts';
import { lastLine, netTool } from '../integration/lab/net-tool.ts';

const NS = 'shop-global';
const CONNECTIONS = 40;

const manifest = (cluster: string, withClient: boolean) => {
  const echo = (n: string) => `---
apiVersion: v1
kind: Pod
metadata: {name: ${n}, namespace: ${NS}, labels: {app: echo}}
spec:
  containers:
  - name: echo
    image: isthmus/echo
    ports: [{containerPort: 8080, name: http, protocol: TCP}]
`;
  return `---
apiVersion: v1
kind: Namespace
metadata: {name: ${NS}}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: ${NS}, annotations: {service.cilium.io/global: "true"}}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, protocol: TCP, targetPort: http}]
${echo(`echo-${cluster}-1`)}${echo(`echo-${cluster}-2`)}${
    withClient
      ? `---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}, labels: {app: client}}
spec:
  containers: [{name: client, image: isthmus/echo}]
`
      : ''
  }`;
};

async function kubectl(plan: LabPlan, cluster: string, args: string[], stdin = '') {
  const r = await kubectlCapture(plan, cluster, args, stdin);
  if (r.code !== 0)
    throw new LabError(`kubectl ${args.join(' ')} failed: ${r.stderr.trim()}`, 'ISTHMUS_LAB_POD');
  return r.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new LabError(
        `demo: timed out after ${ms / 1000} s waiting for ${what}`,
        'ISTHMUS_LAB_POD',
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

const echoPods = (plan: LabPlan, cluster?: string): LabPod[] =>
  labPods(readRecord(plan.runDir)!).filter(
    (p) =>
      p.namespace === NS &&
      p.name.startsWith('echo') &&
      p.ip &&
      (!cluster || p.cluster === cluster),
  );

/** Waits until the first cluster's agent uses exactly the echo pods running in `clusters`. */
async function waitForInUse(plan: LabPlan, local: string, clusters: string[]): Promise<void> {
  await until(`${local}'s agent using the echo backends of ${clusters.join(' and ')}`, async () => {
    const want = echoPods(plan)
      .filter((p) => clusters.includes(p.cluster))
      .map((p) => p.ip)
      .sort()
      .join(',');
    const view = (await listServices({ lab: plan.name, cluster: local }))[0]?.services.find(
      (s) => s.namespace === NS && s.name === 'echo',
    );
    const inUse = (view?.backends ?? [])
      .filter((b) => b.inUse)
      .map((b) => b.addr)
      .sort()
      .join(',');
    return want.split(',').length === clusters.length * 2 && inUse === want ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 500));
}

/** CONNECTIONS new connections from the client, answers counted per cluster. */
async function answersByCluster(plan: LabPlan, local: string, vip: string): Promise<string> {
  const client = labPods(readRecord(plan.runDir)!).find(
    (p) => p.cluster === local && p.namespace === NS && p.name === 'client',
  );
  if (!client) throw new LabError('demo: the client pod is not running', 'ISTHMUS_LAB_POD');
  const r = (await lastLine(
    netTool(client.netnsPath, ['tcp-who', vip, '80', String(CONNECTIONS), '2'], 60_000),
  )) as { counts: Record<string, number>; errors: Record<string, number> };
  const byIp = new Map(echoPods(plan).map((p) => [p.ip, p.cluster]));
  const per: Record<string, number> = {};
  for (const [ip, n] of Object.entries(r.counts)) {
    const c = byIp.get(ip) ?? `unknown ${ip}`;
    per[c] = (per[c] ?? 0) + n;
  }
  const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
  return (
    Object.entries(per)
      .map(([c, n]) => `${c}: ${n}`)
      .join(', ') + (failed ? `, failed: ${failed}` : '')
  );
}

/** Runs the step; returns false (and says why) when the lab has fewer than two clusters. */
export async function globalServiceTour(
  plan: LabPlan,
  say: (line?: string) => void,
): Promise<boolean> {
  const [c1, c2] = plan.clusters.map((c) => c.name);
  if (!c1 || !c2) {
    say('(skipping the global-service step: it needs a lab of two clusters)');
    return false;
  }
  say(
    `A Service ${NS}/echo annotated service.cilium.io/global: "true" in ${c1} and ${c2}, two backends in each; a client in ${c1} opens ${CONNECTIONS} connections to its ClusterIP.`,
  );
  await kubectl(plan, c1, ['apply', '-f', '-'], manifest(c1, true));
  await kubectl(plan, c2, ['apply', '-f', '-'], manifest(c2, false));
  await waitForInUse(plan, c1, [c1, c2]);
  const vip = JSON.parse(
    await kubectl(plan, c1, ['get', 'service', '-n', NS, 'echo', '-o', 'json']),
  ).spec.clusterIP as string;
  say(`answers by cluster: ${await answersByCluster(plan, c1, vip)}`);
  say(
    `Failover: the backends in ${c1} are deleted ($ isthmus lab kubectl ${c1} -- delete pod -n ${NS} -l app=echo).`,
  );
  await kubectl(plan, c1, ['delete', 'pod', '-n', NS, '-l', 'app=echo', '--wait=false']);
  await until(`${c1}'s echo pods to go`, async () =>
    echoPods(plan, c1).length ? undefined : true,
  );
  await waitForInUse(plan, c1, [c2]);
  say(`answers by cluster: ${await answersByCluster(plan, c1, vip)}`);
  say(
    `=> the service now answers from ${c2} only. See it: isthmus service list --lab ${plan.name}`,
  );
  return true;
}
