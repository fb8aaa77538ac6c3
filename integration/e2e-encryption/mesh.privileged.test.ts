// Transparent encryption across clusters on ONE lab of 2 clusters x 2 nodes (encryption:
// wireguard, the mesh connected by the lab): every node has a WireGuard peer for every node of
// the other cluster (from the mesh's node records); pod traffic between clusters crosses the
// underlay only as WireGuard UDP (capture with a marker, both directions, TCP and UDP); `isthmus
// agent status` shows the remote peers with handshakes; an agent restart keeps cross-cluster
// connections and peers (no table is applied before the mesh's initial sync); a rotation while
// the remote cluster cannot read this cluster's mesh etcd switches nothing (old key keeps
// serving, no plaintext) and completes once it can again. Negative control (encryption: none):
// plaintext.privileged.test.ts.
import test from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { endpointSocketPath } from '../../agent/daemon.ts';
import { agentStatus, formatAgentStatus } from '../../cli/agent.ts';
import { callWireguard } from '../../cli/wireguard.ts';
import { planLab, type NodePlan } from '../lab/config.ts';
import { Lab } from '../lab/lab.ts';
import { startMeshEtcd, stopMeshProcess } from '../lab/mesh.ts';
import type { LabPod } from '../lab/record.ts';
import { ensureBuilt, uniqueLabName, downWithoutLeftovers } from '../lab/testing.ts';
import {
  encryptionOf,
  inPod,
  plaintextLines,
  startCapture,
  waitForPeers,
  wireguardLines,
  HTTP_AND_DNS,
} from './helpers.ts';

const plan = planLab({
  name: uniqueLabName('encm'),
  encryption: 'wireguard',
  clusters: [
    { name: 'c1', id: 1, podCIDR: '10.71.0.0/16', nodes: 2 },
    { name: 'c2', id: 2, podCIDR: '10.72.0.0/16', nodes: 2 },
  ],
});
const [c1, c2] = [plan.clusters[0]!, plan.clusters[1]!];
const allNodes = [...c1.nodes, ...c2.nodes];
const MARKER = 'ISTHMUS-CROSS-CLUSTER-MARKER-5c1e';
let lab: Lab | undefined;
let pods: LabPod[] = [];
const work = join(plan.runDir, 'e2e');

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { routeIntervalMs: 300 });
  mkdirSync(work, { recursive: true });
  pods = await lab.addPods(
    allNodes.map((n, i) => ({
      cluster: n.cluster,
      namespace: 'default',
      name: `p${i}`,
      node: n.name,
      ports: HTTP_AND_DNS,
    })),
  );
  await waitForPeers(allNodes, 60_000);
  await waitForReadyPeers(allNodes, 60_000);
});

test.after.always(() => downWithoutLeftovers(lab, plan.name));

const podOn = (node: NodePlan) => pods.find((p) => p.node === node.name)!;
type Marked = { tcpEchoed: number; udpEchoed: number };
const marker = (from: LabPod, to: LabPod, count: number) =>
  inPod<Marked>(from, ['marker', to.ip, '80', '53', MARKER, String(count)]);

/** Every node's peers have handshaked (cross-cluster ones included). */
async function waitForReadyPeers(nodes: NodePlan[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await Promise.all(nodes.map((n) => encryptionOf(n).catch(() => undefined)));
    if (all.every((s) => s && s.peers.length === nodes.length - 1 && s.peers.every((p) => p.ready)))
      return;
    if (Date.now() > deadline)
      throw new Error(`peers not ready: ${JSON.stringify(all.map((s) => s?.peers))}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test.serial(
  'pod traffic between clusters crosses the underlay only as WireGuard UDP',
  async (t) => {
    const pairs: Array<[LabPod, LabPod]> = [
      [podOn(c1.nodes[0]!), podOn(c2.nodes[0]!)],
      [podOn(c2.nodes[1]!), podOn(c1.nodes[1]!)],
    ];
    const cap = await startCapture(plan, join(work, 'cross.pcap'));
    const results = [];
    for (const [from, to] of pairs) results.push(await marker(from, to, 20));
    const got = await cap.stop();
    t.deepEqual(results, [
      { tcpEchoed: 20, udpEchoed: 20 },
      { tcpEchoed: 20, udpEchoed: 20 },
    ]);
    t.false(got.raw.includes(MARKER), 'no captured packet carries the marker');
    t.deepEqual(plaintextLines(got, '10.71.'), [], 'no c1 pod address on the underlay');
    t.deepEqual(plaintextLines(got, '10.72.'), [], 'no c2 pod address on the underlay');
    const wg = wireguardLines(got);
    t.true(wg.length >= 160, `WireGuard packets seen: ${wg.length}`);
    const nodeIPs = (c: typeof c1) => c.nodes.map((n) => n.ip);
    const across = wg.filter(
      (l) =>
        nodeIPs(c1).some((ip) => l.includes(` ${ip}.`)) &&
        nodeIPs(c2).some((ip) => l.includes(` ${ip}.`)),
    );
    t.true(across.length >= 160, `WireGuard packets between c1 and c2 nodes: ${across.length}`);
    const s = await encryptionOf(c1.nodes[0]!);
    const peer = s?.peers.find((p) => p.node === `c2/${c2.nodes[0]!.name}`);
    t.true(!!peer && peer.ready && peer.rxBytes > 0, JSON.stringify(peer));
    t.true(
      s!.peers.some(
        (p) => p.node === `c2/${c2.nodes[0]!.name}` && p.allowedIPs.includes(c2.nodes[0]!.podCIDR),
      ),
    );
  },
);

test.serial('agent status on a c1 node lists the c2 nodes as peers with handshakes', async (t) => {
  const node = c1.nodes[0]!;
  const text = formatAgentStatus(await agentStatus(endpointSocketPath(node.stateDir)));
  t.log(
    text
      .split('\n')
      .filter((l) => l.includes('/'))
      .join('\n'),
  );
  for (const remote of c2.nodes) {
    const line = text.split('\n').find((l) => l.trim().startsWith(`c2/${remote.name} `));
    t.truthy(line, `peer line for c2/${remote.name}`);
    t.regex(line!, new RegExp(`${remote.ip.replaceAll('.', '\\.')}:5187[12] +\\d+s ago .* true$`));
  }
});

test.serial(
  'a c1 agent restarts under a live cross-cluster connection: it survives, remote peers stay',
  async (t) => {
    const node = c1.nodes[0]!;
    const [a, b] = [podOn(node), podOn(c2.nodes[1]!)];
    const cap = await startCapture(plan, join(work, 'restart.pcap'));
    const stream = inPod<{
      sent: number;
      received: number;
      maxGapMs: number;
      error: string | null;
    }>(b, ['stream', a.ip, '80', '10000', '20']);
    const marked = marker(podOn(c2.nodes[0]!), a, 30);
    await new Promise((r) => setTimeout(r, 1000));
    await lab!.restartAgent(node.name);
    const [s, m] = await Promise.all([stream, marked]);
    const got = await cap.stop();
    t.log(`stream ${JSON.stringify(s)}; marker ${JSON.stringify(m)}`);
    t.is(s.error, null, 'the connection was not reset');
    t.is(s.received, s.sent);
    t.deepEqual(m, { tcpEchoed: 30, udpEchoed: 30 }, 'c2 pods kept reaching the restarting node');
    t.false(got.raw.includes(MARKER));
    t.deepEqual(plaintextLines(got, '10.71.'), []);
    t.deepEqual(plaintextLines(got, '10.72.'), []);
    await waitForReadyPeers(allNodes, 30_000);
    const st = await encryptionOf(node);
    t.deepEqual(
      st!.peers.map((p) => p.node).sort(),
      [`c1/${c1.nodes[1]!.name}`, ...c2.nodes.map((n) => `c2/${n.name}`)].sort(),
    );
  },
);

test.serial(
  'rotation while c2 cannot read c1: nothing switches, no plaintext; after reconnect it completes',
  async (t) => {
    const rotating = c1.nodes[0]!;
    const before = await encryptionOf(rotating);
    await stopMeshProcess(plan, c1, 'etcd');
    let etcdDown = true;
    t.teardown(async () => {
      if (etcdDown) await startMeshEtcd(plan, c1);
    });
    const cap = await startCapture(plan, join(work, 'rotation-outage.pcap'));
    const during = marker(podOn(c2.nodes[0]!), podOn(rotating), 40);
    const rot = await callWireguard(
      rotating.stateDir,
      { op: 'rotate', handshakeTimeoutMs: 8000 },
      60_000,
    );
    const m = await during;
    const got = await cap.stop();
    t.true(rot.ok, JSON.stringify(rot));
    const r1 = rot.rotation as { oldKey: string; newKey: string; missing: string[] };
    t.log(`first attempt: ${JSON.stringify(r1)}`);
    t.true(r1.missing.length >= 2, 'the c2 nodes could not learn the new key');
    const mid = await encryptionOf(rotating);
    t.is(mid?.publicKey, before?.publicKey, 'nothing switched: the old key serves');
    t.is(mid?.rotation?.publicKey, r1.newKey, 'the rotation stays pending');
    t.deepEqual(m, { tcpEchoed: 40, udpEchoed: 40 }, 'c2 -> c1 traffic kept flowing');
    t.false(got.raw.includes(MARKER));
    t.deepEqual(plaintextLines(got, '10.71.'), []);
    t.deepEqual(plaintextLines(got, '10.72.'), []);

    await startMeshEtcd(plan, c1);
    etcdDown = false;
    const deadline = Date.now() + 60_000;
    let r2: { newKey: string; missing: string[] } | undefined;
    while (Date.now() < deadline) {
      const again = await callWireguard(
        rotating.stateDir,
        { op: 'rotate', handshakeTimeoutMs: 10_000 },
        90_000,
      );
      r2 = again.rotation as typeof r2;
      if (again.ok && r2?.missing.length === 0) break;
    }
    t.log(`after reconnect: ${JSON.stringify(r2)}`);
    t.deepEqual(r2?.missing, [], 'every peer handshaked once c2 reads c1 again');
    t.is(r2?.newKey, r1.newKey, 'the pending key, not a third one');
    const after = await marker(podOn(c2.nodes[1]!), podOn(rotating), 10);
    t.deepEqual(after, { tcpEchoed: 10, udpEchoed: 10 });
    const remoteView = await encryptionOf(c2.nodes[0]!);
    t.true(remoteView!.peers.some((p) => p.publicKey === r1.newKey));
  },
);
