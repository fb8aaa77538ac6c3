// Cross-cluster propagation (issue 5): a pod created in c2 -> its ipcache entry in the BPF map of
// a c1 node. One lab of 2 clusters x 2 nodes with the mesh. The clock starts when c2's own API
// serves the pod's CiliumEndpoint (watched over the API server's unix socket: identity and IP are
// known, which is where ClusterMesh takes over) and stops when the entry with that identity is in
// c1-node1's pinned ipcache map (polled every 2 ms). Pods are created in batches, so the mesh sees
// bursts. Also prints the c1 agent's RSS/heap with the remote endpoints held.
// `node --import tsx bench/mesh/propagation.ts [pods=200] [batch=10] [timeoutS=400]`
import { readFileSync } from 'node:fs';
import { kubectl, statuses, waitForPods } from '../../integration/e2e-policy/support.ts';
import { nodeIpcache } from '../../integration/e2e-mesh/support.ts';
import { controlPlanePaths } from '../../integration/lab/control-plane.ts';
import { Lab } from '../../integration/lab/lab.ts';
import { labLeftovers } from '../../integration/lab/leftovers.ts';
import { readRecord } from '../../integration/lab/record.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from '../../integration/lab/testing.ts';
import { percentile } from '../convergence/lab-bench.ts';
import { PropagationClock, watchApi } from '../convergence/propagation-clock.ts';

const podCount = Number(process.argv[2] ?? 200);
const batch = Number(process.argv[3] ?? 10);
const timeoutS = Number(process.argv[4] ?? 400);

interface Cep {
  metadata: { name: string };
  status?: { identity?: { id?: number }; networking?: { addressing?: { ipv4?: string }[] } };
}

function podsYaml(from: number, to: number): string {
  let out = '';
  for (let i = from; i < to; i++)
    out += `apiVersion: v1\nkind: Pod\nmetadata: {name: "p${i}", namespace: bench, labels: {app: "p${i % 20}"}}\nspec:\n  containers: [{name: main, image: echo}]\n---\n`;
  return out;
}

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

async function main(): Promise<void> {
  await ensureBuilt();
  const name = uniqueLabName('bprop');
  const plan = twoClusterPlan(name, 2);
  const lab = await Lab.up(plan, { datapath: 'bpf' });
  const deadline = Date.now() + timeoutS * 1000;
  const c2 = plan.clusters[1]!;
  const c1node = plan.clusters[0]!.nodes[0]!;
  try {
    const agentPid = readRecord(plan.runDir)!.agents.find((a) => a.node === c1node.name)!.pid;
    const rssBefore = rssMb(agentPid);
    await kubectl(plan, ['create', 'namespace', 'bench'], '', 'c2');
    const ids = new Map<string, number>();
    const clock = new PropagationClock((pending) => {
      const map = nodeIpcache(c1node);
      return pending.filter((ip) => map.get(`${ip}/32`) === ids.get(ip));
    });
    const stop = watchApi<Cep>(
      controlPlanePaths(plan, c2).apiSocket,
      '/apis/cilium.io/v2/ciliumendpoints?watch=true',
      (type, cep) => {
        const ip = cep.status?.networking?.addressing?.[0]?.ipv4;
        const id = cep.status?.identity?.id;
        if (type === 'DELETED' || !ip || !id || ids.has(ip)) return;
        ids.set(ip, id);
        clock.serve(ip);
      },
    );
    for (let i = 0; i < podCount; i += batch) {
      await kubectl(plan, ['apply', '-f', '-'], podsYaml(i, Math.min(podCount, i + batch)), 'c2');
      await waitForPods(
        plan,
        Array.from({ length: Math.min(batch, podCount - i) }, (_, k) => `c2/bench/p${i + k}`),
        Math.max(1000, deadline - Date.now()),
      );
    }
    while (clock.landedCount < podCount && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const lat = await clock.stop();
    stop();
    const st = (await statuses(plan)).get(c1node.name)!;
    console.log(
      JSON.stringify({
        pods: podCount,
        batch,
        landed: lat.length,
        p50Ms: Math.round(percentile(lat, 50)),
        p99Ms: Math.round(percentile(lat, 99)),
        maxMs: Math.round(Math.max(...lat)),
        targetP99Ms: 500,
        c1AgentRssMb: { before: Math.round(rssBefore), after: Math.round(rssMb(agentPid)) },
        remoteEndpointsSeen: st.clustermesh?.remotes[0]?.counts.endpoints,
      }),
    );
  } finally {
    await lab.down();
    const left = await labLeftovers(name);
    console.log(`left behind: ${left.length ? left.join(', ') : 'nothing'}`);
  }
}

await main();
