// The lab with the kernel datapath in the agents (AgentConfig.datapath = "bpf"): the CNI path
// writes endpoint rows and attaches the pod programs on every lxc veth; with no policy loaded
// traffic flows; a restart re-adopts; DEL and teardown remove rows, programs and pins.
import test from 'ava';
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { runCommand } from '../../agent/routing/command.ts';
import { planLab } from './config.ts';
import { Lab } from './lab.ts';
import { labLeftovers } from './leftovers.ts';
import type { LabPod } from './record.ts';
import { probeAllPairs } from './status.ts';
import { ensureBuilt, uniqueLabName } from './testing.ts';

const name = uniqueLabName('dp');
const plan = planLab({
  name,
  encryption: 'none',
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
});
const ports = [
  { port: 80, protocol: 'TCP' as const },
  { port: 53, protocol: 'UDP' as const },
];
let lab: Lab | undefined;
let pods: LabPod[] = [];

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { datapath: 'bpf' });
  pods = await lab.addPods(
    Array.from({ length: 4 }, (_, i) => ({
      cluster: 'c1',
      namespace: 'default',
      name: `p${i}`,
      ports,
    })),
  );
});

test.after.always(async () => {
  await lab?.down();
});

async function agentView(node: string) {
  const answer = await callAgent(endpointSocketPath(lab!.node(node).stateDir), { op: 'list' });
  if (!answer.ok) throw new Error(JSON.stringify(answer));
  return { endpoints: answer.endpoints ?? [], datapath: (answer.datapathIds ?? []).sort() };
}

async function programsOn(node: string, ifname: string): Promise<string> {
  const ns = lab!.node(node).netns;
  const ingress = await runCommand(['tc', '-n', ns, 'filter', 'show', 'dev', ifname, 'ingress']);
  const egress = await runCommand(['tc', '-n', ns, 'filter', 'show', 'dev', ifname, 'egress']);
  return ingress.stdout + egress.stdout;
}

test.serial(
  'every pod veth carries the pod programs and an endpoints row; traffic flows without policy',
  async (t) => {
    for (const node of plan.clusters[0]!.nodes) {
      const view = await agentView(node.name);
      t.is(view.endpoints.length, 2);
      t.deepEqual(view.datapath, view.endpoints.map((e) => e.id).sort());
      for (const ep of view.endpoints) {
        const progs = await programsOn(node.name, ep.hostIfname);
        t.is(
          progs.match(/direct-action/g)?.length,
          2,
          `ingress and egress programs on ${ep.hostIfname}:\n${progs}`,
        );
        t.regex(progs, /from_pod[\s\S]*to_pod/, 'from_pod on tc ingress, to_pod on tc egress');
      }
    }
    const rows = await probeAllPairs(pods, ports);
    t.deepEqual(
      rows.filter((r) => !r.allowed),
      [],
    );
  },
);

test.serial('a restarted agent re-adopts its endpoints; programs stay attached', async (t) => {
  const before = await agentView('c1-node1');
  await lab!.restartAgent('c1-node1');
  const after = await agentView('c1-node1');
  t.deepEqual(after, before);
  for (const ep of after.endpoints)
    t.is((await programsOn('c1-node1', ep.hostIfname)).match(/direct-action/g)?.length, 2);
  t.true((await probeAllPairs(pods, ports)).every((r) => r.allowed));
});

test.serial('removing a pod removes its endpoints row with its veth', async (t) => {
  const gone = pods.find((p) => p.node === 'c1-node2')!;
  await lab!.removePod(gone);
  const view = await agentView('c1-node2');
  t.is(view.endpoints.length, 1);
  t.deepEqual(view.datapath, [view.endpoints[0]!.id]);
});

test.serial('teardown leaves no namespace, mount (pins) or process', async (t) => {
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
});
