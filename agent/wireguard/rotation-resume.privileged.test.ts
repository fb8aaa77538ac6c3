// A rotation survives its agent: an agent process is killed (SIGKILL) right after beginRotation
// and right after the switch; the next agent adopts the next or the retiring device and finishes
// the rotation, while a TCP stream between the two nodes' pods keeps flowing. Afterwards: one
// device, one key file, the old key gone from the peer, no wireguard-go left (checked by PID).
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun } from '../routing/command.ts';
import { wgRunDir } from './device.ts';
import { readRotationState } from './rotation.ts';
import { WG_PRIMARY, WG_SECONDARY, type WgNode } from './types.ts';
import {
  FLOW,
  NsProcess,
  leftovers,
  uniquePrefix,
  wgNodeOf,
  type TestNode,
  type Topology,
} from './test/topology.ts';
import { AgentFleet } from './test/fleet.ts';

const prefix = uniquePrefix('h22rr');
const CRASH = new URL('./test/rotation-crash.ts', import.meta.url).pathname;
const fleet = new AgentFleet();
let topo: Topology;
const agentOf = (n: TestNode) => fleet.of(n);

/** A node's row as its published state says: main key and port of its active device. */
function rowOf(n: TestNode): WgNode {
  const a = fleet.agents.get(n.name);
  return { ...wgNodeOf(n, a?.publicKey), ...(a && { port: a.activeDevice.port }) };
}

const table = (): WgNode[] => topo.nodes.map(rowOf);

const STREAM_S = 20;

/** A TCP stream from node 1's pod to node 2's (1 KiB every 15 ms for STREAM_S) around `during`:
 * never reset, every byte delivered. */
async function underStream(t: ExecutionContext, port: number, during: () => Promise<void>) {
  const [a, b] = topo.nodes;
  const sink = new NsProcess(b.podNetns, ['node', FLOW, 'sink', String(port), '120']);
  t.teardown(() => sink.stop('SIGKILL'));
  await sink.waitFor((o) => o.includes('listening'));
  const argv = ['node', FLOW, 'stream', b.podIP, String(port), String(STREAM_S)];
  const stream = new NsProcess(a.podNetns, argv);
  t.teardown(() => stream.stop('SIGKILL'));
  await stream.waitFor((o) => o.includes('connected'));
  const started = Date.now();
  await during();
  const ms = Date.now() - started;
  t.true(ms < STREAM_S * 1000, `the stream ended before the rotation did (${ms} ms)`);
  t.is(await stream.exited, 0, `stream reset or stalled: ${stream.output}`);
  await sink.exited;
  const res = sink.lines().find((l) => 'bytes' in l);
  t.is(res?.error, null, sink.output);
  t.true(Number(res?.bytes) > 100 * 1024, sink.output);
  t.log(`rotation finished in ${ms} ms; longest delivery gap ${res?.maxGapMs} ms`);
}

/** Runs the crashing agent for node `n` and returns its step lines as they come. */
function crashingAgent(n: TestNode, crashAt: 'begin' | 'switch'): NsProcess {
  const arg = JSON.stringify({ options: fleet.options(n), nodes: table(), crashAt });
  return new NsProcess('/proc/self/ns/net', ['node', '--import', 'tsx', CRASH, arg]);
}

function stepOf(p: NsProcess, step: string): Record<string, unknown> {
  const line = p.lines().find((l) => l.step === step);
  if (!line) throw new Error(`no ${step} step: ${p.output}`);
  return line;
}

async function linksOf(n: TestNode): Promise<string[]> {
  const out = await mustRun(['ip', '-n', n.ns, '-br', 'link']);
  return [WG_PRIMARY.ifname, WG_SECONDARY.ifname].filter((d) => out.includes(d));
}

async function keyFiles(n: TestNode): Promise<string[]> {
  return (await readdir(wgRunDir(n.stateDir))).filter((f) => f.endsWith('.key')).sort();
}

/** After a finished rotation: one device, one key, one live wireguard-go, the peer on the new key. */
async function assertSettled(t: ExecutionContext, n: TestNode, peer: TestNode, oldKey: string) {
  const a = agentOf(n);
  const dev = a.activeDevice;
  t.deepEqual(await linksOf(n), [dev.ifname], 'one device');
  t.deepEqual(await keyFiles(n), [`${dev.ifname}.key`], 'one key file');
  t.deepEqual(await readRotationState(n.stateDir), {
    active: { ifname: dev.ifname, port: dev.port },
  });
  t.is(a.nextDevice, undefined);
  t.is(a.retiringDevice, undefined);
  const peerKeys = (await agentOf(peer).status()).peers.map((p) => p.publicKey);
  t.deepEqual(peerKeys, [a.publicKey], 'the peer holds the new key only');
  t.false(peerKeys.includes(oldKey));
  const alive = [...fleet.pids].filter((pid) => existsSync(`/proc/${pid}`));
  const wanted = topo.nodes.map((x) => agentOf(x).activeDevice.pid);
  t.deepEqual(alive.sort(), wanted.sort(), 'exactly one wireguard-go per node runs');
}

test.before(async () => {
  topo = await fleet.build(prefix);
  for (const n of topo.nodes) await fleet.start(n);
  for (const a of fleet.agents.values()) await a.setPeers(table());
  const [a, b] = topo.nodes;
  await mustRun(['nsenter', `--net=${a.podNetns}`, 'ping', '-c', '2', '-W', '2', b.podIP]);
});

test.after.always(() => fleet.destroy());

test.serial(
  'agent killed right after beginRotation: the next one adopts the next device and key and completes',
  async (t) => {
    const [a, b] = topo.nodes;
    const oldKey = agentOf(a).publicKey;
    await underStream(t, 7101, async () => {
      agentOf(a).stop();
      const child = crashingAgent(a, 'begin');
      t.not(await child.exited, 0, 'the agent died by SIGKILL');
      const begun = stepOf(child, 'begun');
      const nextPid = Number(begun.nextPid);
      fleet.pids.add(nextPid);
      t.true(existsSync(`/proc/${nextPid}`), 'the next wireguard-go outlived its agent');
      t.deepEqual((await readRotationState(a.stateDir)).next?.ifname, WG_SECONDARY.ifname);
      const next = await fleet.start(a);
      t.is(next.publicKey, oldKey, 'still serving the old key');
      t.is(next.nextPublicKey, String(begun.nextKey), 'the persisted next key was adopted');
      t.is(next.nextDevice?.pid, nextPid);
      t.true(next.nextDevice?.adopted);
      t.deepEqual(next.resumed, { step: 'next', device: WG_SECONDARY.ifname });
      await next.setPeers(table());
      // the daemon's part: publish the next key again, then the flip once switched
      await agentOf(b).update({ ...rowOf(a), nextPublicKey: next.nextPublicKey });
      const done = await next.completeRotation({
        handshakeTimeoutMs: 20_000,
        afterSwitch: () =>
          agentOf(b).update({
            ...rowOf(a),
            publicKey: String(begun.nextKey),
            port: WG_SECONDARY.port,
          }),
      });
      t.deepEqual(done, { missing: [], stillOnOld: [] });
    });
    t.not(agentOf(a).publicKey, oldKey);
    await assertSettled(t, a, b, oldKey);
  },
);

test.serial(
  'agent killed right after the switch: the next one adopts the old device as retiring and retires it',
  async (t) => {
    const [a, b] = topo.nodes;
    const oldKey = agentOf(a).publicKey;
    const oldPid = agentOf(a).activeDevice.pid;
    await underStream(t, 7103, async () => {
      agentOf(a).stop();
      const child = crashingAgent(a, 'switch');
      t.teardown(() => child.stop('SIGKILL'));
      await child.waitFor((o) => o.includes('"begun"'), 60_000);
      const begun = stepOf(child, 'begun');
      fleet.pids.add(Number(begun.nextPid));
      const newKey = String(begun.nextKey);
      await agentOf(b).update({ ...rowOf(a), nextPublicKey: newKey });
      await child.waitFor((o) => o.includes('"switched"'), 60_000);
      // the flip reaches the peer, the crashed agent recorded the switch: then it dies
      await agentOf(b).update({ ...rowOf(a), publicKey: newKey, port: Number(begun.nextPort) });
      for (let i = 0; i < 200 && !(await readRotationState(a.stateDir)).retiring; i++)
        await sleep(50);
      await child.stop('SIGKILL');
      t.false(child.output.includes('"retired"'), 'killed before retiring');
      t.is((await readRotationState(a.stateDir)).retiring?.port, Number(begun.port));
      t.true(existsSync(`/proc/${oldPid}`), 'the old wireguard-go outlived its agent');
      const next = await fleet.start(a);
      t.is(next.publicKey, newKey);
      t.is(next.activeDevice.pid, Number(begun.nextPid));
      t.is(next.retiringDevice?.pid, oldPid, 'the old device was adopted as retiring');
      t.is(next.resumed?.step, 'retiring');
      t.is((await next.status()).retiring, next.retiringDevice?.ifname);
      await next.setPeers(table());
      t.deepEqual(await next.retireOld(1_000, 20_000), [], 'no peer sends to the old key');
    });
    t.false(existsSync(`/proc/${oldPid}`), 'the old wireguard-go was ended');
    await assertSettled(t, a, b, oldKey);
  },
);

test.serial('a next key torn by a crash: the rotation is abandoned, nothing is left', async (t) => {
  const [a] = topo.nodes;
  const r = agentOf(a);
  const active = r.activeDevice;
  const other = active.ifname === WG_PRIMARY.ifname ? WG_SECONDARY : WG_PRIMARY;
  r.stop();
  const dir = wgRunDir(a.stateDir);
  await writeFile(
    `${dir}/active.json`,
    JSON.stringify({ ifname: active.ifname, next: other.ifname }),
  );
  await writeFile(`${dir}/${other.ifname}.key`, 'torn', { mode: 0o600 });
  const next = await fleet.start(a);
  t.is(next.nextPublicKey, undefined);
  t.is(next.resumed?.step, 'discarded');
  t.regex(next.resumed?.reason ?? '', /does not hold a base64 WireGuard key/);
  t.is(next.publicKey, r.publicKey);
  t.is(next.activeDevice.pid, active.pid);
  t.deepEqual(await linksOf(a), [active.ifname]);
  t.deepEqual(await keyFiles(a), [`${active.ifname}.key`]);
  t.deepEqual(JSON.parse(await readFile(`${dir}/active.json`, 'utf8')), { ifname: active.ifname });
  // and a rotation starts cleanly from there
  const key = await next.beginRotation();
  t.not(key, r.publicKey);
  fleet.track(next); // the teardown below ends its devices too
});

test.serial('teardown leaves no wireguard-go, namespace or mount', async (t) => {
  t.deepEqual(await fleet.stopAll(), [], 'no wireguard-go still running');
  await fleet.teardown();
  t.deepEqual(await leftovers(prefix), []);
});
