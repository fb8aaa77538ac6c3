// Convergence benchmark (issue 4): in a 3-node lab with the control plane and the kernel datapath,
// (1) time from `kubectl apply` of a policy change to every agent reporting its BPF maps converged
// on it (read back from the kernel), over N applies; (2) time from `kubectl apply` of a new pod to
// its first allowed connection from a pod on another node, over M pods. Prints p50/p99.
// `node --import tsx bench/convergence/policy-convergence.ts [applies=50] [pods=10]`
import { probe } from '../../integration/lab/probe.ts';
import {
  converge,
  kubectl,
  podYaml,
  podsNow,
  waitForPods,
} from '../../integration/e2e-policy/support.ts';
import { allConverged, percentile, withBenchLab } from './lab-bench.ts';

const applies = Number(process.argv[2] ?? 50);
const newPods = Number(process.argv[3] ?? 10);
const ports = [{ port: 80, protocol: 'TCP' as const, name: 'http' }];

const policy = (from: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: guard, namespace: bench}
spec:
  podSelector: {matchLabels: {app: p2}}
  ingress: [{from: [{podSelector: {matchLabels: {app: ${from}}}}]}]
`;

const report = (what: string, ms: number[]) =>
  console.log(
    `${what}: n=${ms.length} p50=${percentile(ms, 50).toFixed(0)} ms p99=${percentile(ms, 99).toFixed(0)} ms max=${Math.max(...ms).toFixed(0)} ms`,
  );

const timeoutMs = 120_000 + applies * 30_000 + newPods * 60_000;
await withBenchLab(
  { prefix: 'bconv', nodes: 3, fullPassIntervalMs: 10_000, timeoutMs },
  async (env) => {
    const name = env.name;
    const nodes = env.plan.clusters[0]!.nodes.map((n) => n.name);
    await kubectl(
      env.plan,
      ['apply', '-f', '-'],
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: bench}\n---\n` +
        ['p1', 'p2', 'p3'].map((p, i) => podYaml('bench', p, { app: p }, ports, nodes[i])).join(''),
    );
    const [p1] = await waitForPods(env.plan, ['c1/bench/p1', 'c1/bench/p2', 'c1/bench/p3']);
    await converge(env.plan);

    const applyMs: number[] = [];
    for (let i = 0; i < applies; i++) {
      const t0 = performance.now();
      await kubectl(env.plan, ['apply', '-f', '-'], policy(i % 2 ? 'p1' : 'p3'));
      if (!(await allConverged(name, Date.now() + 30_000)))
        throw new Error(`apply ${i}: no convergence`);
      applyMs.push(performance.now() - t0);
    }
    await kubectl(env.plan, ['delete', 'networkpolicy', '-n', 'bench', 'guard']);

    const podMs: number[] = [];
    for (let i = 0; i < newPods; i++) {
      const pod = `n${i}`;
      const t0 = performance.now();
      await kubectl(
        env.plan,
        ['apply', '-f', '-'],
        podYaml('bench', pod, { app: 'new' }, ports, nodes[1 + (i % 2)]),
      );
      for (;;) {
        if (performance.now() - t0 > 60_000) throw new Error(`pod ${pod}: no connection in 60 s`);
        const ip = podsNow(env.plan).get(`c1/bench/${pod}`)?.ip;
        if (!ip) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const [r] = await probe([{ fromNetns: p1!.netnsPath, ip, port: 80, protocol: 'TCP' }], {
          timeoutMs: 200,
          confirmRetries: 0,
        });
        if (r?.result === 'allowed') break;
      }
      podMs.push(performance.now() - t0);
    }
    console.log(
      `3-node lab, kernel datapath; times include kubectl (~0.1-0.3 s per call on this machine)`,
    );
    report('policy apply -> every agent converged (BPF maps read back)', applyMs);
    report('pod apply -> first allowed connection from another node', podMs);
  },
);
