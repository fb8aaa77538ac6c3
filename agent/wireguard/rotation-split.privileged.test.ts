// The per-peer switch of a rotation (README "Key rotation", step 4): node 1 rotates while
// node 3 applies the flip late; node 1's routes to node 3 stay on the old device (mirrored into
// the new one) until node 3 shows up on the new key, so a datagram stream 1 -> 3 loses nothing.
// Then the same across an agent restart between one peer's move and the other's.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from '../routing/command.ts';
import { mirroredPrefixes } from './mirror.ts';
import type { WgNode } from './types.ts';
import {
  FLOW,
  NsProcess,
  uniquePrefix,
  wgNodeOf,
  type TestNode,
  type Topology,
} from './test/topology.ts';
import { AgentFleet } from './test/fleet.ts';

const prefix = uniquePrefix('h28sp');
const fleet = new AgentFleet();
let topo: Topology;
/** what each node has read of node 1's record (the flip reaches peers at different times) */
const seenOf1 = new Map<string, WgNode>();

const node = (i: number): TestNode => topo.nodes[i - 1]!;
const agentOf = (n: TestNode) => fleet.of(n);

/** The table as node `n` sees it: node 1's row as last delivered to `n`. */
function tableFor(n: TestNode): WgNode[] {
  return topo.nodes.map((m) =>
    m.index === 1 && n.index !== 1
      ? (seenOf1.get(n.name) ?? wgNodeOf(m, agentOf(m).publicKey))
      : wgNodeOf(m, agentOf(m).publicKey),
  );
}

async function deliverOf1(n: TestNode, row: WgNode): Promise<void> {
  seenOf1.set(n.name, row);
  await agentOf(n).update(row);
}

/** Device of each of node 1's tunnel routes (proto 188). */
async function routesOf1(): Promise<Map<string, string>> {
  const out = await mustRun(['ip', '-n', node(1).ns, '-json', 'route', 'show', 'proto', '188']);
  return new Map(
    (JSON.parse(out) as Array<{ dst: string; dev: string }>).map((r) => [r.dst, r.dev]),
  );
}

/** Datagrams (one every 10 ms) from node 1's pod to node 3's pod, counted there. */
async function streamTo3(port: number, count: number) {
  const sink = new NsProcess(node(3).podNetns, [
    ...['node', FLOW, 'udpsink', String(port), String(Math.ceil(count / 100) + 15), String(count)],
  ]);
  await sink.waitFor((o) => o.includes('listening'));
  const send = new NsProcess(node(1).podNetns, [
    ...['node', FLOW, 'udp', node(3).podIP, String(port), `s${port}`, String(count)],
  ]);
  let sending = true;
  void send.exited.then(() => (sending = false));
  return {
    sending: () => sending,
    result: async () => {
      await send.exited;
      await sink.exited;
      return sink.lines().find((l) => 'received' in l) as { received: number; distinct: number };
    },
    stop: () => Promise.all([send.stop(), sink.stop()]),
  };
}

/** Node 1 starts a rotation; every peer reads the next key at once. */
async function beginOn1() {
  const a = node(1);
  const ra = agentOf(a);
  const oldKey = ra.publicKey;
  const oldDev = ra.activeDevice;
  const nextKey = await ra.beginRotation();
  const nextDev = ra.nextDevice!;
  fleet.track(ra);
  const withNext = { ...wgNodeOf(a, oldKey), port: oldDev.port, nextPublicKey: nextKey };
  for (const n of topo.nodes.slice(1)) await deliverOf1(n, { ...withNext, nextPort: nextDev.port });
  const flip = { ...wgNodeOf(a, nextKey), port: nextDev.port };
  return { ra, oldDev, nextDev, flip };
}

test.before(async () => {
  topo = await fleet.build(prefix, 1420, 3);
  for (const n of topo.nodes) await fleet.start(n);
  for (const n of topo.nodes) await agentOf(n).setPeers(tableFor(n));
});

test.after.always(() => fleet.destroy());

test.serial(
  'a peer that applies the flip 4 s late receives every datagram: its routes wait on the old device',
  async (t) => {
    const [b, c] = [node(2), node(3)];
    const stream = await streamTo3(7201, 1500);
    t.teardown(() => void stream.stop());
    await sleep(500);
    const { ra, oldDev, nextDev, flip } = await beginOn1();
    let split: Map<string, string> | undefined;
    let mirrored: string[] = [];
    let late: Promise<void> | undefined;
    const res = await ra.completeRotation({
      handshakeTimeoutMs: 15_000,
      quietMs: 1_000,
      retireTimeoutMs: 30_000,
      afterSwitch: async () => {
        await deliverOf1(b, flip); // node 2 reads the flip at once, node 3 4 s later
        late = sleep(4_000).then(async () => {
          split = await routesOf1();
          mirrored = (await mirroredPrefixes(node(1).netns, oldDev.ifname)).map((m) => m.dst);
          await deliverOf1(c, flip);
        });
      },
    });
    await late;
    const sendingAfter = stream.sending();
    const r = await stream.result();
    t.log(`datagrams 1 -> 3: ${r.distinct} of 1500 (${r.received} with duplicates)`);
    t.is(r.distinct, 1500, `datagrams 1 -> 3 lost: ${1500 - r.distinct}`);
    t.deepEqual(res, { missing: [], stillOnOld: [] });
    t.true(sendingAfter, 'the stream outlasted the rotation');
    t.is(split?.get(b.podCIDR), nextDev.ifname, 'node 2 moved: its routes on the new device');
    t.is(split?.get(c.podCIDR), oldDev.ifname, 'node 3 not yet: its routes on the old device');
    t.deepEqual(mirrored, [c.podCIDR], 'only what still goes through the old device is mirrored');
    const routes = await routesOf1();
    t.deepEqual([...new Set(routes.values())], [nextDev.ifname]);
    t.false((await mustRun(['ip', '-n', node(1).ns, '-br', 'link'])).includes(oldDev.ifname));
  },
);

test.serial(
  'an agent restarted after one peer moved and before the other keeps the split and finishes without loss',
  async (t) => {
    const [a, b, c] = [node(1), node(2), node(3)];
    const stream = await streamTo3(7202, 1500);
    t.teardown(() => void stream.stop());
    await sleep(500);
    const t0 = Date.now();
    const { ra, oldDev, nextDev, flip } = await beginOn1();
    const res = await ra.completeRotation({
      handshakeTimeoutMs: 15_000,
      quietMs: 1_000,
      retireTimeoutMs: 3_000,
      afterSwitch: () => deliverOf1(b, flip), // node 3 does not read the flip yet
    });
    t.deepEqual(res, { missing: [], stillOnOld: [agentOf(c).publicKey] });
    t.log(`completeRotation returned after ${Date.now() - t0} ms`);
    ra.stop();
    const next = await fleet.start(a); // a new agent: nothing of the rotation in memory
    t.deepEqual(next.resumed, { step: 'retiring', device: oldDev.ifname });
    t.is(next.activeDevice.ifname, nextDev.ifname);
    await next.setPeers(tableFor(a));
    const split = await routesOf1();
    t.is(split.get(b.podCIDR), nextDev.ifname, 'node 2 stays on the new device');
    t.is(split.get(c.podCIDR), oldDev.ifname, 'node 3 stays on the old device');
    const mirrored = await mirroredPrefixes(a.netns, oldDev.ifname);
    t.deepEqual(
      mirrored.map((m) => m.dst),
      [c.podCIDR],
    );
    // as the daemon does at start: retiring waits, then node 3 reads the flip
    const retired = next.retireOld(1_000, 30_000);
    await sleep(1_000);
    await deliverOf1(c, flip);
    t.deepEqual(await retired, [], 'node 3 moved: the old device goes');
    t.log(`old device retired after ${Date.now() - t0} ms`);
    const sendingAfter = stream.sending();
    const r = await stream.result();
    t.log(`datagrams 1 -> 3: ${r.distinct} of 1500 (${r.received} with duplicates)`);
    t.is(r.distinct, 1500, `datagrams 1 -> 3 lost: ${1500 - r.distinct}`);
    t.true(sendingAfter, 'the stream outlasted the rotation');
    t.deepEqual([...new Set((await routesOf1()).values())], [nextDev.ifname]);
    t.false((await mustRun(['ip', '-n', a.ns, '-br', 'link'])).includes(oldDev.ifname));
  },
);
