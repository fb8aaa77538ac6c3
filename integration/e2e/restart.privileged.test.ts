// Restart without disruption (issue 2): both agents of a 2-node lab restart, one after the other,
// during a cross-node iperf3 stream under a one-way policy (A may connect to B, B may not connect
// to A), while B probes A the whole time. The stream must run to its end without error, no probe
// of B may ever get through, and the restarted agents must adopt the pinned maps (same ids) and
// restore their endpoints, with the programs they attach being the ones pinned.
import test from 'ava';
import { spawn } from 'node:child_process';
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { Protocol, type EndpointPolicy } from '../../agent/policy/entry.ts';
import { planLab } from '../lab/config.ts';
import { Lab } from '../lab/lab.ts';
import { labLeftovers, rootFootprint } from '../lab/leftovers.ts';
import { probe, type ProbeVerdict } from '../lab/probe.ts';
import type { LabPod } from '../lab/record.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import { Mesh, sleep } from './mesh.ts';
import { pinnedMapIds, pinnedProgramIds } from './node-maps.ts';

const name = uniqueLabName('e2er');
const plan = planLab({
  name,
  encryption: 'none',
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 }],
});
const nodes = plan.clusters[0]!.nodes;
const [node1, node2] = nodes.map((n) => n.name) as [string, string];
const IPERF_PORT = 5201;
const STREAM_SECONDS = 16;
let lab: Lab | undefined;
let mesh: Mesh | undefined;
let a: LabPod, b: LabPod;

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { datapath: 'bpf', kubernetes: false });
  [a, b] = (await lab.addPods([
    {
      cluster: 'c1',
      namespace: 'e2e',
      name: 'a',
      node: node1,
      ports: [{ port: 80, protocol: 'TCP' }],
    },
    {
      cluster: 'c1',
      namespace: 'e2e',
      name: 'b',
      node: node2,
      ports: [{ port: 80, protocol: 'TCP' }],
    },
  ])) as [LabPod, LabPod];
  mesh = new Mesh(lab, [a, b]);
});

test.after.always(async () => {
  mesh?.close();
  await lab?.down();
});

/** A admits nobody; B admits A on TCP 80 and the iperf3 port. B's egress is open, so A's
 * ingress on node1 is the only thing between B and A. */
function oneWay(m: Mesh): { a: EndpointPolicy; b: EndpointPolicy } {
  const tcp = (port: number) => ({
    direction: 'ingress' as const,
    peer: m.identityOf(a),
    protocol: Protocol.TCP,
    port,
    portPrefixLen: 16,
    deny: false,
  });
  return {
    a: { ingressEnforced: true, egressEnforced: false, entries: [], prefixes: [] },
    b: {
      ingressEnforced: true,
      egressEnforced: false,
      entries: [tcp(80), tcp(IPERF_PORT)],
      prefixes: [],
    },
  };
}

/** Program ids attached on the pods' veths, per node (the pods of a node share one load). */
function attachedPrograms(m: Mesh): Array<{ fromPod: number; toPod: number }> {
  return nodes.map((n) => {
    const ids = m.pods
      .filter((p) => p.node === n.name)
      .map((p) => m.node(n.name).maps.attached({ ifindex: m.hostIfindexOf(p) }))
      .map((a) => ({ fromPod: a.ingressProgramId, toPod: a.egressProgramId }));
    if (new Set(ids.map((i) => JSON.stringify(i))).size !== 1)
      throw new Error(`pods of ${n.name} run different programs: ${JSON.stringify(ids)}`);
    return ids[0]!;
  });
}

interface Run {
  code: number | null;
  out: string;
}

function inPod(pod: LabPod, argv: string[], timeoutMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${pod.netnsPath}`, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

async function agentView(node: string) {
  const answer = await callAgent(endpointSocketPath(lab!.node(node).stateDir), { op: 'list' });
  if (!answer.ok) throw new Error(JSON.stringify(answer));
  return answer.endpoints ?? [];
}

/** Everything the restart must leave as it was, read from the agent and the pins. */
async function snapshot(m: Mesh) {
  return Promise.all(
    nodes.map(async (n) => ({
      node: n.name,
      mapIds: pinnedMapIds(n),
      endpoints: await agentView(n.name),
      rows: [...m.node(n.name).maps.endpoints.entries()].sort(),
      policy: m.pods
        .filter((p) => p.node === n.name)
        .map((p) => m.node(n.name).maps.policy.read(m.endpointIdOf(p))),
    })),
  );
}

test.serial(
  'agents restart during a TCP stream: the stream continues, denied probes never pass, pins are adopted',
  async (t) => {
    const m = mesh!;
    const policy = oneWay(m);
    m.applyPolicy(a, policy.a);
    m.applyPolicy(b, policy.b);
    const [ok] = await probe([{ fromNetns: a.netnsPath, ip: b.ip, port: 80, protocol: 'TCP' }]);
    const [no] = await probe([{ fromNetns: b.netnsPath, ip: a.ip, port: 80, protocol: 'TCP' }]);
    t.is(ok!.result, 'allowed', 'A reaches B before the restart');
    t.is(no!.result, 'dropped', 'B does not reach A before the restart');
    const before = await snapshot(m);
    const programsBefore = nodes.map((n) => pinnedProgramIds(n));
    t.deepEqual(attachedPrograms(m), programsBefore, 'before: the pinned programs are attached');

    const server = inPod(b, ['iperf3', '-s', '-1', '-p', String(IPERF_PORT)], 60_000);
    await sleep(500);
    const client = inPod(
      a,
      [
        'iperf3',
        '-c',
        b.ip,
        '-p',
        String(IPERF_PORT),
        '-t',
        String(STREAM_SECONDS),
        '-i',
        '1',
        '-J',
      ],
      (STREAM_SECONDS + 20) * 1000,
    );
    // Denied probes from B to A, back to back, until the stream is over.
    let streaming = true;
    const verdicts: ProbeVerdict[] = [];
    const prober = (async () => {
      while (streaming) {
        const rs = await probe(
          Array.from({ length: 4 }, () => ({
            fromNetns: b.netnsPath,
            ip: a.ip,
            port: 80,
            protocol: 'TCP' as const,
          })),
          { timeoutMs: 300, confirmRetries: 0 },
        );
        verdicts.push(...rs.map((r) => r.result));
      }
    })();
    // Sample the tc slots of both veths all along: a restart must never leave one empty.
    const empty: string[] = [];
    let samples = 0;
    const sampler = setInterval(() => {
      samples++;
      for (const pod of m.pods) {
        const on = m.node(pod.node).maps.attached({ ifindex: m.hostIfindexOf(pod) });
        if (!on.ingressProgramId || !on.egressProgramId) empty.push(`${pod.name}@${Date.now()}`);
      }
    }, 10);
    await sleep(3000);
    const pidsBefore = [lab!.agentPid(node1), lab!.agentPid(node2)];
    await lab!.restartAgent(node1);
    await sleep(1000);
    await lab!.restartAgent(node2);
    const pidsAfter = [lab!.agentPid(node1), lab!.agentPid(node2)];
    const iperf = await client;
    clearInterval(sampler);
    streaming = false;
    await prober;
    await server;

    t.notDeepEqual(pidsAfter, pidsBefore, 'both agents were replaced');
    t.true(samples > 100, `tc slots sampled ${samples} times`);
    t.deepEqual(empty, [], 'no moment without programs on a pod veth');
    t.is(iperf.code, 0, `iperf3 ran to its end:\n${iperf.out.slice(-2000)}`);
    const report = JSON.parse(iperf.out) as {
      error?: string;
      intervals: Array<{ sum: { bits_per_second: number } }>;
    };
    t.is(report.error, undefined);
    t.true(report.intervals.length >= STREAM_SECONDS - 1);
    t.deepEqual(
      report.intervals.map((i) => i.sum.bits_per_second).filter((bps) => !(bps > 0)),
      [],
      'no one-second interval of the stream stalled',
    );
    t.true(verdicts.length >= 20, `probes ran throughout (${verdicts.length})`);
    t.deepEqual(
      verdicts.filter((v) => v !== 'dropped'),
      [],
      'every probe from B to A was dropped',
    );

    const after = await snapshot(m);
    t.deepEqual(after, before, 'same map ids, endpoints, rows (identities, flags) and policy');
    t.deepEqual(
      attachedPrograms(m),
      nodes.map(pinnedProgramIds),
      'after: the programs the new agents attached are the ones pinned',
    );
    t.log(`${verdicts.length} denied probes, ${samples} samples of the tc slots`);
    t.log('program ids before', programsBefore, 'after', nodes.map(pinnedProgramIds));
    const [ok2] = await probe([{ fromNetns: a.netnsPath, ip: b.ip, port: 80, protocol: 'TCP' }]);
    t.is(ok2!.result, 'allowed', 'A still reaches B on a new connection');
  },
);

test.serial('teardown leaves no namespace, mount, process or root-namespace trace', async (t) => {
  mesh?.close();
  mesh = undefined;
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
  t.deepEqual(await rootFootprint(plan), []);
});
