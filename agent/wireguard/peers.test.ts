import test from 'ava';
import { FakeWg } from './fake-wg.ts';
import { generateKey } from './keys.ts';
import { PeerReconciler, allowedIPsOf, desiredPeers, peerDrift } from './peers.ts';
import { tunnelRoutes } from './routes.ts';
import type { WgNode } from './types.ts';
import { parseDump } from './wg-tool.ts';

const LOCAL = 'c1/n1';
const localKey = generateKey().publicKey;
const node = (name: string, i: number, key?: string): WgNode => ({
  name,
  nodeIP: `172.30.0.${i}`,
  podCIDRs: [`10.1.${i}.0/24`],
  podIPs: [],
  publicKey: key ?? generateKey().publicKey,
});

function setup() {
  const wg = new FakeWg(localKey);
  const r = new PeerReconciler(wg, LOCAL, () => [localKey]);
  return { wg, r };
}

test('one peer per other node: endpoint on 51871, allowed IPs the pod CIDRs', async (t) => {
  const { wg, r } = setup();
  const n2 = node('c1/n2', 2);
  const n3 = node('c2/n1', 3);
  await r.prune([node(LOCAL, 1, localKey), n2, n3]);
  const peers = (await wg.dump()).peers;
  t.deepEqual(
    peers.map((p) => [p.publicKey, p.endpoint, p.allowedIPs]).sort(),
    [
      [n2.publicKey, '172.30.0.2:51871', ['10.1.2.0/24']],
      [n3.publicKey, '172.30.0.3:51871', ['10.1.3.0/24']],
    ].sort(),
  );
});

test('a second pass changes nothing (idempotent)', async (t) => {
  const { wg, r } = setup();
  await r.prune([node('c1/n2', 2), node('c1/n3', 3)]);
  const calls = { ...wg.calls };
  t.deepEqual(await r.reconcile(), { changed: 0, removed: 0 });
  t.deepEqual(wg.calls, calls);
});

test('a key change replaces the peer; an address change updates it in place', async (t) => {
  const { wg, r } = setup();
  const n2 = node('c1/n2', 2);
  await r.prune([n2]);
  const rekeyed = { ...n2, publicKey: generateKey().publicKey };
  await r.update(rekeyed);
  t.deepEqual(
    (await wg.dump()).peers.map((p) => p.publicKey),
    [rekeyed.publicKey],
  );
  await r.update({ ...rekeyed, nodeIP: '172.30.0.99', podIPs: ['10.9.9.9'] });
  const [p] = (await wg.dump()).peers;
  t.is(p?.endpoint, '172.30.0.99:51871');
  t.deepEqual(p?.allowedIPs, ['10.1.2.0/24', '10.9.9.9/32']);
});

test('delete removes the peer; deleting an unknown node is not an error', async (t) => {
  const { wg, r } = setup();
  await r.prune([node('c1/n2', 2), node('c1/n3', 3)]);
  await r.delete('c1/n3');
  t.is(wg.peers.size, 1);
  await t.notThrowsAsync(() => r.delete('c9/none'));
  t.is(wg.peers.size, 1);
});

test('before the first prune nothing is removed; prune removes peers of unknown nodes', async (t) => {
  const { wg, r } = setup();
  await wg.setPeers([
    {
      publicKey: generateKey().publicKey,
      endpoint: '172.30.0.7:51871',
      allowedIPs: ['10.1.7.0/24'],
    },
  ]);
  await r.update(node('c1/n2', 2));
  t.is(wg.peers.size, 2, 'a restarting agent keeps peers it has not heard of yet');
  await r.prune([node('c1/n2', 2)]);
  t.is(wg.peers.size, 1);
});

test('a full pass repairs drift on the device', async (t) => {
  const { wg, r } = setup();
  const n2 = node('c1/n2', 2);
  await r.prune([n2]);
  const p = wg.peers.get(n2.publicKey!);
  if (p) p.allowedIPs = [];
  t.deepEqual(await r.reconcile(), { changed: 1, removed: 0 });
  t.deepEqual(wg.peers.get(n2.publicKey!)?.allowedIPs, ['10.1.2.0/24']);
});

test('a key claimed by two nodes is refused for both with a reason; fixed when one re-keys', async (t) => {
  const { wg, r } = setup();
  const shared = generateKey().publicKey;
  await r.prune([node('c1/n2', 2, shared), node('c2/n5', 5, shared), node('c1/n3', 3)]);
  t.is(wg.peers.size, 1);
  t.false(wg.peers.has(shared));
  const refused = r.status().filter((s) => s.state === 'refused');
  t.deepEqual(
    refused.map((s) => s.node),
    ['c1/n2', 'c2/n5'],
  );
  t.regex(refused[0]?.state === 'refused' ? refused[0].reason : '', /also claimed by c2\/n5/);
  await r.update(node('c2/n5', 5));
  t.true(wg.peers.has(shared));
  t.is(wg.peers.size, 3);
});

test("a remote claiming this node's own key is refused", async (t) => {
  const { wg, r } = setup();
  await r.prune([node('c2/n1', 4, localKey)]);
  t.is(wg.peers.size, 0);
  t.is(r.status()[0]?.state, 'refused');
});

test('a node without a key waits; a rotating node gets a handshake-only peer for its next key', async (t) => {
  const { wg, r } = setup();
  const next = generateKey().publicKey;
  const n2 = { ...node('c1/n2', 2), nextPublicKey: next };
  await r.prune([{ ...node('c1/n3', 3), publicKey: undefined }, n2]);
  t.is(r.status().find((s) => s.node === 'c1/n3')?.state, 'waiting');
  t.deepEqual(wg.peers.get(next)?.allowedIPs, []);
  t.is(wg.peers.get(next)?.endpoint, '172.30.0.2:51872');
  // the node flips to its new key: allowed IPs move, the old key is gone
  await r.update({ ...n2, publicKey: next, nextPublicKey: undefined, port: 51872 });
  t.deepEqual([...wg.peers.keys()], [next]);
  t.deepEqual(wg.peers.get(next)?.allowedIPs, ['10.1.2.0/24']);
});

test('allowed IPs: CIDRs canonical, pod IPs outside them as /32, sorted', (t) => {
  t.deepEqual(
    allowedIPsOf({
      name: 'x',
      nodeIP: '1.1.1.1',
      podCIDRs: ['10.1.2.7/24'],
      podIPs: ['10.1.2.9', '10.5.0.1'],
    }),
    ['10.1.2.0/24', '10.5.0.1/32'],
  );
});

test('peerDrift names what differs', (t) => {
  const want = { publicKey: 'k', endpoint: '1.1.1.1:51871', allowedIPs: ['10.0.0.0/24'] };
  t.is(peerDrift(want, undefined), 'missing');
  const have = { ...want, latestHandshake: 0, rxBytes: 0, txBytes: 0, persistentKeepalive: 0 };
  t.is(peerDrift(want, have), null);
  t.regex(peerDrift(want, { ...have, endpoint: '2.2.2.2:51871' }) ?? '', /endpoint/);
});

test('tunnel routes: every remote node (with or without a peer) via the device, not the local one', (t) => {
  const routes = tunnelRoutes(
    LOCAL,
    [node(LOCAL, 1), node('c1/n2', 2), { ...node('c2/n1', 3), publicKey: undefined }],
    'isthmus_wg0',
  );
  t.deepEqual(routes, [
    { dst: '10.1.2.0/24', dev: 'isthmus_wg0' },
    { dst: '10.1.3.0/24', dev: 'isthmus_wg0' },
  ]);
});

test('parseDump reads `wg show dump`', (t) => {
  const text =
    'cHJpdmF0ZQ==\tcHVibGlj\t51871\toff\n' +
    'UEVFUjE=\t(none)\t172.30.0.2:51871\t10.1.2.0/24,10.9.9.9/32\t1700000000\t1234\t5678\toff\n' +
    'UEVFUjI=\t(none)\t(none)\t(none)\t0\t0\t0\t25\n';
  const d = parseDump(text);
  t.is(d.publicKey, 'cHVibGlj');
  t.is(d.listenPort, 51871);
  t.deepEqual(d.peers[0], {
    publicKey: 'UEVFUjE=',
    endpoint: '172.30.0.2:51871',
    allowedIPs: ['10.1.2.0/24', '10.9.9.9/32'],
    latestHandshake: 1700000000,
    rxBytes: 1234,
    txBytes: 5678,
    persistentKeepalive: 0,
  });
  t.deepEqual(d.peers[1]?.allowedIPs, []);
  t.is(d.peers[1]?.endpoint, null);
  t.is(d.peers[1]?.persistentKeepalive, 25);
});
