// WireguardAgent's control logic on fakes (FakeWg device, FakeSteering): what a pass may remove
// before the daemon hands it the first full table.
import test from 'ava';
import { WireguardAgent } from './agent.ts';
import type { Device } from './device.ts';
import { FakeWg } from './fake-wg.ts';
import { generateKey } from './keys.ts';
import { FakeSteering } from './steering.ts';
import { WG_PRIMARY, type WgNode } from './types.ts';

const LOCAL = 'c1/n1';
const node = (name: string, i: number): WgNode => ({
  name,
  nodeIP: `172.30.0.${i}`,
  podCIDRs: [`10.1.${i}.0/24`],
  podIPs: [],
  publicKey: generateKey().publicKey,
});

/** An agent restarted over a device that still has the peer, route and range of a remote
 * node (c2/n9) from the previous agent's table. */
function restarted() {
  const key = generateKey();
  const wg = new FakeWg(key.publicKey);
  const device: Device = {
    ...WG_PRIMARY,
    mode: 'wireguard-go',
    pid: null,
    adopted: true,
    control: wg as unknown as Device['control'], // the agent uses only WgControl's calls
  };
  const steering = new FakeSteering();
  const remote = node('c2/n9', 9);
  void wg.setPeers([
    { publicKey: remote.publicKey!, endpoint: '172.30.0.9:51871', allowedIPs: remote.podCIDRs },
  ]);
  steering.routes.set('10.1.9.0/24', WG_PRIMARY.ifname);
  steering.mesh.add('10.1.9.0/24');
  const agent = WireguardAgent.assemble(
    { nodeName: LOCAL, stateDir: '/nonexistent', resyncMs: 0 },
    device,
    { ...key, path: '' },
    steering,
  );
  return { agent, wg, steering, remote };
}

test('resync before the first full table removes no peer, route or strict range', async (t) => {
  const { agent, wg, steering, remote } = restarted();
  await agent.update(node('c1/n2', 2)); // a local node listed before the mesh synced
  await agent.resync(); // the periodic pass, mesh sync still running
  t.true(wg.peers.has(remote.publicKey!), 'remote peer kept');
  t.is(steering.routes.get('10.1.9.0/24'), WG_PRIMARY.ifname, 'remote route kept');
  t.true(steering.mesh.has('10.1.9.0/24'), 'remote strict range kept');
  t.is(steering.routes.get('10.1.2.0/24'), WG_PRIMARY.ifname, 'the known node is added');
  t.true(steering.mesh.has('10.1.2.0/24'));
});

test('after the first full table, resync prunes what the table lacks', async (t) => {
  const { agent, wg, steering, remote } = restarted();
  const n2 = node('c1/n2', 2);
  await agent.setPeers([n2]); // the daemon's full table: c2/n9 is gone from the mesh
  await agent.resync();
  t.false(wg.peers.has(remote.publicKey!));
  t.false(steering.routes.has('10.1.9.0/24'));
  t.false(steering.mesh.has('10.1.9.0/24'));
  t.deepEqual([...wg.peers.keys()], [n2.publicKey]);
  t.deepEqual([...steering.routes.keys()], ['10.1.2.0/24']);
});

test('a full table that keeps the remote node keeps its peer, route and range', async (t) => {
  const { agent, wg, steering, remote } = restarted();
  await agent.setPeers([node('c1/n2', 2), remote]);
  await agent.resync();
  t.true(wg.peers.has(remote.publicKey!));
  t.is(steering.routes.get('10.1.9.0/24'), WG_PRIMARY.ifname);
  t.true(steering.mesh.has('10.1.9.0/24'));
});
