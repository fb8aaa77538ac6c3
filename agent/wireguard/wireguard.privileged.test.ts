// Two nodes on a bridge, a pod behind each, WireGuard through WireguardAgent: encryption on the
// wire (with a plaintext negative control), adoption of wireguard-go across an agent restart,
// a 100 MB transfer, duplicate keys, peer removal under strict mode, rotation under a stream.
import test from 'ava';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { mustRun } from '../routing/command.ts';
import { ipBatch } from '../../integration/lab/netns.ts';
import { WG_PRIMARY, WG_SECONDARY, type WgNode } from './types.ts';
import { DROP_STRICT_PLAINTEXT } from './strict.ts';
import { nativeAddon } from '../native/index.ts';
import { decodeFlowEvent, type FlowEvent } from '../datapath/events.ts';
import {
  FLOW,
  NsProcess,
  capture,
  countPackets,
  leftovers,
  plainRoutes,
  uniquePrefix,
  wgNodeOf,
  type TestNode,
  type Topology,
} from './test/topology.ts';
import { AgentFleet } from './test/fleet.ts';

const prefix = uniquePrefix('h12wg');
const AGENT_PROCESS = new URL('./test/agent-process.ts', import.meta.url).pathname;
const fleet = new AgentFleet();
let topo: Topology;
const agentOf = (n: TestNode) => fleet.of(n);
const table = () => fleet.table();

async function syncAll(): Promise<void> {
  for (const a of fleet.agents.values()) await a.setPeers(table());
}

/** TCP from pod1 to pod2 carrying `marker`, plus UDP datagrams with it. */
async function markerTraffic(marker: string): Promise<{ tcpBytes: number }> {
  const [a, b] = topo.nodes;
  const file = `${topo.dir}/marker.txt`;
  await mustRun(['sh', '-c', `for i in $(seq 200); do echo ${marker}-$i; done > ${file}`]);
  const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7001', '10']);
  await sink.waitFor((o) => o.includes('listening'));
  const send = new NsProcess(a.podNetns, ['node', FLOW, 'send', b.podIP, '7001', file]);
  await send.exited;
  await sink.exited;
  const udp = new NsProcess(a.podNetns, ['node', FLOW, 'udp', b.podIP, '7002', marker, '20']);
  await udp.exited;
  const res = sink.lines().find((l) => 'bytes' in l);
  return { tcpBytes: Number(res?.bytes ?? 0) };
}

async function pcapHas(file: string, marker: string): Promise<boolean> {
  return (await readFile(file)).includes(Buffer.from(marker));
}

test.before(async () => {
  topo = await fleet.build(prefix);
});

test.after.always(() => fleet.destroy());

test.serial(
  'negative control: without the tunnel the marker crosses the underlay in plaintext',
  async (t) => {
    await plainRoutes(topo);
    const cap = await capture(topo, 'plain');
    const { tcpBytes } = await markerTraffic('ISTHMUSPLAIN');
    const file = await cap.stop();
    t.true(tcpBytes > 0);
    t.true(await pcapHas(file, 'ISTHMUSPLAIN'), 'the capture must see plaintext traffic');
  },
);

test.serial('pod TCP/UDP crosses the underlay only as WireGuard UDP to 51871', async (t) => {
  for (const n of topo.nodes) await fleet.start(n);
  await syncAll();
  const [a, b] = topo.nodes;
  await mustRun(['nsenter', `--net=${a.podNetns}`, 'ping', '-c', '2', '-W', '2', b.podIP]);
  const cap = await capture(topo, 'wg');
  const { tcpBytes } = await markerTraffic('ISTHMUSSECRET');
  const file = await cap.stop();
  t.is(tcpBytes, 200 * 'ISTHMUSSECRET-100\n'.length - 9 * 2 - 90 * 1); // 1..9 one digit, 10..99 two
  t.false(await pcapHas(file, 'ISTHMUSSECRET'));
  t.is(
    await countPackets(file, 'net 10.251.0.0/16'),
    0,
    'no packet with a pod address on the wire',
  );
  t.true((await countPackets(file, 'udp port 51871')) > 10);
  t.is(await countPackets(file, 'ip and not udp port 51871'), 0);
  const st = await agentOf(a).status();
  t.is(st.device, WG_PRIMARY.ifname);
  t.is(st.listenPort, WG_PRIMARY.port);
  t.is(st.mode, 'wireguard-go');
  t.is(st.publicKey, agentOf(a).publicKey);
  t.deepEqual(
    st.peers.map((p) => [p.node, p.endpoint, p.allowedIPs, p.ready]),
    [[b.name, `${b.ip}:51871`, [b.podCIDR], true]],
  );
  t.true(st.peers[0]!.rxBytes > 0 && st.peers[0]!.txBytes > 0);
  const mode = (
    await mustRun(['stat', '-c', '%a', `${a.stateDir}/wireguard/isthmus_wg0.key`])
  ).trim();
  t.is(mode, '600');
});

test.serial(
  'a new agent adopts the running wireguard-go; a stream is not interrupted',
  async (t) => {
    const [a, b] = topo.nodes;
    const old = agentOf(a);
    const pid = old.activeDevice.pid;
    const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7003', '30']);
    await sink.waitFor((o) => o.includes('listening'));
    const stream = new NsProcess(a.podNetns, ['node', FLOW, 'stream', b.podIP, '7003', '4']);
    await stream.waitFor((o) => o.includes('connected'));
    old.stop();
    const next = await fleet.start(a);
    await next.setPeers(table());
    t.true(next.activeDevice.adopted);
    t.is(next.activeDevice.pid, pid);
    t.is(next.publicKey, old.publicKey);
    t.is(await stream.exited, 0, stream.output);
    await sink.exited;
    const res = sink.lines().find((l) => 'bytes' in l);
    t.is(res?.error, null);
    t.true(Number(res?.maxGapMs) < 500, `longest gap ${res?.maxGapMs} ms`);
  },
);

test.serial(
  'an agent process killed with SIGKILL leaves wireguard-go running for the next one',
  async (t) => {
    const [a, b] = topo.nodes;
    const pid = agentOf(b).activeDevice.pid;
    agentOf(b).stop();
    const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7008', '30']);
    await sink.waitFor((o) => o.includes('listening'));
    const stream = new NsProcess(a.podNetns, ['node', FLOW, 'stream', b.podIP, '7008', '4']);
    await stream.waitFor((o) => o.includes('connected'));
    const arg = JSON.stringify({ options: fleet.options(b), nodes: table() });
    const child = new NsProcess('/proc/self/ns/net', [
      'node',
      '--import',
      'tsx',
      AGENT_PROCESS,
      arg,
    ]);
    t.not(await child.exited, 0, 'the agent process died by SIGKILL');
    const seen = child.lines()[0];
    t.is(seen?.pid, pid, child.output);
    t.is(seen?.adopted, true);
    t.true(existsSync(`/proc/${pid}`), 'wireguard-go survived its agent');
    const next = await fleet.start(b);
    await next.setPeers(table());
    t.is(next.activeDevice.pid, pid);
    t.is(await stream.exited, 0, stream.output);
    await sink.exited;
    const res = sink.lines().find((l) => 'bytes' in l);
    t.is(res?.error, null);
    t.true(Number(res?.maxGapMs) < 500, `longest gap ${res?.maxGapMs} ms`);
  },
);

test.serial('100 MB through the tunnel arrives intact', async (t) => {
  const [a, b] = topo.nodes;
  const blob = `${topo.dir}/blob`;
  await mustRun(['sh', '-c', `head -c 100000000 /dev/urandom > ${blob}`]);
  const want = (await mustRun(['sha256sum', blob])).split(' ')[0];
  const txBefore = (await agentOf(a).status()).peers[0]?.txBytes ?? 0;
  const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7004', '110']);
  await sink.waitFor((o) => o.includes('listening'));
  const send = new NsProcess(a.podNetns, ['node', FLOW, 'send', b.podIP, '7004', blob]);
  t.is(await send.exited, 0, send.output);
  await sink.exited;
  const res = sink.lines().find((l) => 'bytes' in l);
  t.is(res?.bytes, 100_000_000);
  t.is(res?.sha256, want);
  const txAfter = (await agentOf(a).status()).peers[0]?.txBytes ?? 0;
  t.true(txAfter - txBefore >= 100_000_000, 'the transfer went through the tunnel');
});

test.serial('a public key claimed by two nodes is refused for both, with a reason', async (t) => {
  const [a, b] = topo.nodes;
  const thief: WgNode = {
    name: 'c2/n9',
    nodeIP: '10.250.0.9',
    podCIDRs: ['10.252.9.0/24'],
    podIPs: [],
    publicKey: agentOf(b).publicKey,
  };
  await agentOf(a).setPeers([...table(), thief]);
  const st = await agentOf(a).status();
  t.deepEqual(st.peers, []);
  t.deepEqual(st.refused.map((r) => r.node).sort(), [b.name, thief.name]);
  t.regex(st.refused[0]!.reason, /also claimed by/);
  await agentOf(a).setPeers(table());
  t.is((await agentOf(a).status()).peers.length, 1);
});

test.serial(
  'strict mode: with the peer removed and the agent down, pod traffic is dropped on the underlay, counted and reported',
  async (t) => {
    const [a, b] = topo.nodes;
    await agentOf(a).delete(b.name);
    t.deepEqual((await agentOf(a).status()).peers, [], 'peer removed with the node');
    t.false((await mustRun(['ip', '-n', a.ns, 'route'])).includes(b.podCIDR), 'route removed too');
    agentOf(a).stop(); // from here strict mode is the kernel's alone: no agent runs on node 1
    // A fallback route to the underlay (as native routing would install): strict mode must hold.
    await ipBatch(a.ns, [`route replace ${b.podCIDR} via ${b.ip}`]);
    drainStrictEvents(a); // empties the ring of earlier events
    const pinRoot = topo.pinRoots[0] ?? '';
    const before = droppedAt(pinRoot);
    const cap = await capture(topo, 'strict');
    const udp = new NsProcess(a.podNetns, [
      'node',
      FLOW,
      'udp',
      b.podIP,
      '7005',
      'ISTHMUSLEAK',
      '20',
    ]);
    await udp.exited;
    const ping = await new NsProcess(a.podNetns, ['ping', '-c', '2', '-W', '1', b.podIP]).exited;
    const file = await cap.stop();
    t.not(ping, 0);
    t.false(await pcapHas(file, 'ISTHMUSLEAK'));
    t.is(await countPackets(file, 'net 10.251.0.0/16'), 0);
    t.true(droppedAt(pinRoot) - before >= 22n);
    const drops = drainStrictEvents(a).filter((e) => e.dst === b.podIP);
    t.true(drops.length >= 22, `${drops.length} strict events`);
    t.true(drops.every((e) => e.verdict === 'dropped' && e.dropReason === DROP_STRICT_PLAINTEXT));
    t.true(drops.some((e) => e.protocol === 17 && e.dport === 7005));
    const next = await fleet.start(a);
    await next.setPeers(table());
    t.is(await new NsProcess(a.podNetns, ['ping', '-c', '1', '-W', '2', b.podIP]).exited, 0);
    // the restarted agent found the pinned ranges and converges them without rewriting
    t.deepEqual([...next.strict!.ranges()].sort(), [
      [a.podCIDR, 3],
      [b.podCIDR, 2],
    ]);
    t.deepEqual(next.strict!.setRanges([a.podCIDR], [a.podCIDR, b.podCIDR]), {
      added: 0,
      removed: 0,
    });
    t.deepEqual(next.strict!.setRanges([a.podCIDR], [a.podCIDR]), { added: 0, removed: 1 });
    await next.resync();
    t.is(next.strict!.ranges().size, 2);
  },
);

/** The strict-mode drop counter read straight from the pinned map (no agent needed). */
function droppedAt(pinRoot: string): bigint {
  const addon = nativeAddon();
  const fd = addon.objGet(`${pinRoot}/isth_strictc_v1`);
  try {
    const val = Buffer.alloc(8 * addon.possibleCpus());
    addon.mapLookup(fd, Buffer.alloc(4), val);
    let sum = 0n;
    for (let c = 0; c < addon.possibleCpus(); c++) sum += val.readBigUInt64LE(c * 8);
    return sum;
  } finally {
    addon.closeFd(fd);
  }
}

/** Flow events on the node's shared ring (no other consumer runs in this test). */
function drainStrictEvents(n: TestNode): FlowEvent[] {
  const addon = nativeAddon();
  const fd = addon.objGet(`${topo.pinRoots[n.index - 1]}/isth_events_v1`);
  const out: FlowEvent[] = [];
  const id = addon.ringbufOpen(fd, (recs) => out.push(...recs.map(decodeFlowEvent)), false);
  try {
    addon.ringbufDrain(id);
  } finally {
    addon.ringbufClose(id);
    addon.closeFd(fd);
  }
  return out;
}

test.serial(
  'rotation moves to a new key under a running stream; the old key leaves the peer',
  async (t) => {
    const [a, b] = topo.nodes;
    const ra = agentOf(a);
    const oldKey = ra.publicKey;
    const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7006', '40']);
    await sink.waitFor((o) => o.includes('listening'));
    const stream = new NsProcess(a.podNetns, ['node', FLOW, 'stream', b.podIP, '7006', '6']);
    await stream.waitFor((o) => o.includes('connected'));
    const nextKey = await ra.beginRotation();
    await agentOf(b).update({ ...wgNodeOf(a, oldKey), nextPublicKey: nextKey });
    const { missing, stillOnOld } = await ra.completeRotation({
      handshakeTimeoutMs: 12_000,
      afterSwitch: () => agentOf(b).update({ ...wgNodeOf(a, nextKey), port: WG_SECONDARY.port }),
    });
    t.deepEqual(missing, []);
    t.deepEqual(stillOnOld, [], 'no peer sends to the old key after the flip');
    fleet.track(ra);
    t.is(ra.publicKey, nextKey);
    t.is(await stream.exited, 0, stream.output);
    await sink.exited;
    const res = sink.lines().find((l) => 'bytes' in l);
    t.is(res?.error, null);
    t.log(`longest delivery gap during rotation: ${res?.maxGapMs} ms`);
    const peerKeys = (await agentOf(b).status()).peers.map((p) => p.publicKey);
    t.deepEqual(peerKeys, [nextKey]);
    t.false(peerKeys.includes(oldKey));
    const st = await ra.status();
    t.is(st.device, WG_SECONDARY.ifname);
    t.is(st.listenPort, WG_SECONDARY.port);
    const links = await mustRun(['ip', '-n', a.ns, '-br', 'link']);
    t.false(links.includes(WG_PRIMARY.ifname), 'old device retired');
    t.is(await new NsProcess(a.podNetns, ['ping', '-c', '1', '-W', '2', b.podIP]).exited, 0);
  },
);

test.serial(
  'the old key is not retired while a peer that missed the flip still sends to it',
  async (t) => {
    const [a, b] = topo.nodes;
    const rb = agentOf(b);
    const oldKey = rb.publicKey;
    const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', '7009', '60']);
    await sink.waitFor((o) => o.includes('listening'));
    const stream = new NsProcess(a.podNetns, ['node', FLOW, 'stream', b.podIP, '7009', '20']);
    await stream.waitFor((o) => o.includes('connected'));
    const nextKey = await rb.beginRotation();
    await agentOf(a).update({ ...wgNodeOf(b, oldKey), nextPublicKey: nextKey });
    // node 1 never hears of the flip (its cluster is cut off from the mesh, say) and keeps
    // sending to the old key: a steady UDP probe (TCP backs off when its ACKs stop arriving)
    const probe = new NsProcess(a.podNetns, [
      'node',
      FLOW,
      'udp',
      b.podIP,
      '7010',
      'probe',
      '1000',
    ]);
    t.teardown(() => probe.stop());
    const { missing, stillOnOld } = await rb.completeRotation({
      handshakeTimeoutMs: 12_000,
      quietMs: 1_000,
      retireTimeoutMs: 3_000,
    });
    t.deepEqual(missing, []);
    t.deepEqual(stillOnOld, [agentOf(a).publicKey]);
    fleet.track(rb);
    t.true(
      (await mustRun(['ip', '-n', b.ns, '-br', 'link'])).includes(WG_PRIMARY.ifname),
      'old device kept',
    );
    // the flip reaches node 1: it moves to the new key, and the old device can go
    await agentOf(a).update({ ...wgNodeOf(b, nextKey), port: WG_SECONDARY.port });
    t.deepEqual(await rb.retireOld(1_000, 10_000), []);
    t.false(
      (await mustRun(['ip', '-n', b.ns, '-br', 'link'])).includes(WG_PRIMARY.ifname),
      'old device retired',
    );
    t.is(await stream.exited, 0, stream.output);
    await sink.exited;
    const res = sink.lines().find((l) => 'bytes' in l);
    t.is(res?.error, null);
    t.log(`longest delivery gap while node 1 missed the flip: ${res?.maxGapMs} ms`);
    t.deepEqual(
      (await agentOf(a).status()).peers.map((p) => p.publicKey),
      [nextKey],
    );
  },
);

test.serial(
  'a peer that applies the flip late loses nothing it sends: the old key waits until it moved',
  async (t) => {
    const [a, b] = topo.nodes;
    const ra = agentOf(a);
    const oldKey = ra.publicKey;
    const oldDev = ra.activeDevice;
    const nextKey = await ra.beginRotation();
    const nextDev = ra.nextDevice!;
    await agentOf(b).update({
      ...wgNodeOf(a, oldKey),
      port: oldDev.port,
      nextPublicKey: nextKey,
      nextPort: nextDev.port,
    });
    let late: Promise<{ sent: number; received: unknown; oldAtFlip: boolean }> | undefined;
    // node 2 reads the flip 4 s after the switch (twice quietMs): idle until 2.5 s, then it
    // sends to node 1's pod across its flip, first to the old key, then to the new one
    const lateFlip = async () => {
      const switched = Date.now();
      const sink = new NsProcess(a.podNetns, ['node', FLOW, 'udpsink', '7012', '10']);
      t.teardown(() => sink.stop());
      await sink.waitFor((o) => o.includes('listening'));
      await sleep(Math.max(0, switched + 2_500 - Date.now()));
      const send = new NsProcess(b.podNetns, ['node', FLOW, 'udp', a.podIP, '7012', 'late', '200']);
      t.teardown(() => send.stop());
      await sleep(Math.max(0, switched + 4_000 - Date.now()));
      const links = await mustRun(['ip', '-n', a.ns, '-br', 'link']);
      await agentOf(b).update({ ...wgNodeOf(a, nextKey), port: nextDev.port });
      await send.exited;
      await sink.exited;
      return {
        sent: 200,
        received: sink.lines().find((l) => 'received' in l),
        oldAtFlip: links.includes(oldDev.ifname),
      };
    };
    const { missing, stillOnOld } = await ra.completeRotation({
      handshakeTimeoutMs: 12_000,
      retireTimeoutMs: 20_000,
      afterSwitch: async () => {
        late = lateFlip();
      },
    });
    fleet.track(ra);
    t.deepEqual(missing, []);
    t.deepEqual(stillOnOld, [], 'retired once node 2 moved');
    const r = await late!;
    t.true(r.oldAtFlip, 'the old device was still there when node 2 read the flip');
    t.deepEqual(r.received, { received: 200, distinct: 200 }, 'no datagram from node 2 lost');
    t.false(
      (await mustRun(['ip', '-n', a.ns, '-br', 'link'])).includes(oldDev.ifname),
      'old device retired',
    );
    t.deepEqual(
      (await agentOf(b).status()).peers.map((p) => p.publicKey),
      [nextKey],
    );
  },
);

test.serial('teardown removes every namespace, mount and wireguard-go process', async (t) => {
  t.deepEqual(await fleet.stopAll(), [], 'no wireguard-go still running');
  await fleet.teardown();
  t.deepEqual(await leftovers(prefix), []);
});
