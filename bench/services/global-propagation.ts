// Global-service propagation (issue 7): a backend added in c2 -> in use in a c1 node's LB maps.
// One lab of 2 clusters x 2 nodes with the mesh; the Service bench/echo is global in both
// clusters (affinity none), c1 has no local backends. The clock starts when c2's own API serves
// an EndpointSlice listing the new pod as ready (watched over the API server's unix socket: that
// is where ClusterMesh takes over) and stops when c1-node1's pinned maps hold a backend with that
// address in a slot of the service (polled every 2 ms). Pods are added one at a time.
// `node --import tsx bench/services/global-propagation.ts [adds=50] [timeoutS=400]`
import { kubectl, podYaml, waitForPods } from '../../integration/e2e-policy/support.ts';
import { openNodeMaps } from '../../integration/e2e/node-maps.ts';
import { ECHO_PORTS } from '../../integration/e2e-services/support.ts';
import { controlPlanePaths } from '../../integration/lab/control-plane.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from '../../integration/lab/testing.ts';
import { percentile } from '../convergence/lab-bench.ts';
import { PropagationClock, watchApi } from '../convergence/propagation-clock.ts';

const adds = Number(process.argv[2] ?? 50);
const timeoutS = Number(process.argv[3] ?? 400);
const NS = 'bench';

interface Slice {
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
}

const serviceYaml = `apiVersion: v1
kind: Service
metadata: {name: echo, namespace: ${NS}, annotations: {service.cilium.io/global: "true"}}
spec:
  selector: {app: echo}
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: http}
---
`;

async function main(): Promise<void> {
  await ensureBuilt();
  const name = uniqueLabName('bgsvc');
  const plan = twoClusterPlan(name, 2);
  const lab = await Lab.up(plan, { datapath: 'bpf' });
  const deadline = Date.now() + timeoutS * 1000;
  const c2 = plan.clusters[1]!;
  const maps = openNodeMaps(plan.clusters[0]!.nodes[0]!);
  try {
    const ns = `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${NS}}\n---\n`;
    for (const c of ['c1', 'c2']) await kubectl(plan, ['apply', '-f', '-'], ns + serviceYaml, c);
    const clock = new PropagationClock((pending) => {
      const inSlots = new Set(maps.lb.slots.values());
      const wanted = new Set(pending);
      return [...maps.lb.backends.entries()]
        .filter(([id, b]) => wanted.has(b.addr) && inSlots.has(id))
        .map(([, b]) => b.addr);
    });
    // the clock of an address starts when c2's API serves an EndpointSlice with it ready
    const stop = watchApi<Slice>(
      controlPlanePaths(plan, c2).apiSocket,
      `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices?watch=true`,
      (type, slice) => {
        if (type === 'DELETED') return;
        for (const e of slice.endpoints ?? [])
          if (e.conditions?.ready !== false) e.addresses.forEach((ip) => clock.serve(ip));
      },
    );
    for (let i = 0; i < adds && Date.now() < deadline; i++) {
      const node = c2.nodes[i % c2.nodes.length]!.name;
      await kubectl(
        plan,
        ['apply', '-f', '-'],
        podYaml(NS, `echo-${i}`, { app: 'echo' }, ECHO_PORTS, node),
        'c2',
      );
      const [pod] = await waitForPods(
        plan,
        [`c2/${NS}/echo-${i}`],
        Math.max(1000, deadline - Date.now()),
      );
      while (!clock.hasLanded(pod!.ip) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
    }
    const lat = await clock.stop();
    stop();
    console.log(
      JSON.stringify({
        adds,
        landed: lat.length,
        p50Ms: Math.round(percentile(lat, 50)),
        p99Ms: Math.round(percentile(lat, 99)),
        maxMs: Math.round(Math.max(...lat)),
        targetP99Ms: 500,
      }),
    );
  } finally {
    maps.close();
    await lab.down();
    const left = await labLeftovers(name);
    console.log(`left behind: ${left.length ? left.join(', ') : 'nothing'}`);
  }
}

await main();
