// The WireGuard node table across clusters: ClusterMesh's sink feeds remote node records into
// the same table as the local Nodes; the peers, tunnel routes and strict ranges computed from it
// (agent/wireguard) cover remote nodes, and native routes to them are never installed.
import test from 'ava';
import type { NodeRecord } from '../../clustermesh/kvstore/index.ts';
import { AgentMeshSink } from '../clustermesh/sink.ts';
import { IpcacheTable } from '../ipcache/table.ts';
import { FakeRouteNetlink } from '../routing/fake-netlink.ts';
import { NodeRouteReconciler } from '../routing/reconciler.ts';
import { FakeWg } from '../wireguard/fake-wg.ts';
import { desiredPeers, PeerReconciler } from '../wireguard/peers.ts';
import { tunnelRoutes } from '../wireguard/routes.ts';
import type { WgNode } from '../wireguard/types.ts';
import { WgNodeTable, withoutTunnelled } from './wg-node-table.ts';

const key = (n: number) => Buffer.alloc(32, n).toString('base64');
const SELF = 'c1/n1';

const local = (n: number, publicKey?: string): WgNode => ({
  name: `c1/n${n}`,
  nodeIP: `172.30.0.${10 + n}`,
  podCIDRs: [`10.1.${n}.0/24`],
  podIPs: [],
  ...(publicKey && { publicKey }),
});

const record = (n: number, wg: Partial<NodeRecord> = {}): NodeRecord => ({
  Name: `n${n}`,
  Cluster: 'c2',
  ClusterID: 2,
  IPAddresses: [{ Type: 'InternalIP', IP: `172.30.0.${20 + n}` }],
  IPv4AllocCIDR: null,
  IPv6AllocCIDR: null,
  Source: 'kvstore',
  EncryptionKey: 0,
  WireguardPubKey: '',
  ...wg,
});
const addresses = (n: number) => ({ podCidrs: [`10.2.${n}.0/24`], ips: [`172.30.0.${20 + n}`] });

function setup() {
  const table = new WgNodeTable();
  table.setLocal([local(1, key(1)), local(2, key(2))]);
  const netlink = new FakeRouteNetlink();
  const routes = new NodeRouteReconciler('n1', withoutTunnelled(netlink, table.tunnelled), {
    intervalMs: 0,
  });
  const ipcache = new IpcacheTable();
  const sink = new AgentMeshSink({
    upsertIdentity: () => {},
    removeIdentity: () => {},
    ipcache,
    routes,
    encryption: {
      upsertRemoteNode: (n) => table.upsertRemote(n),
      deleteRemoteNode: (name) => void table.deleteRemote(name),
    },
    log: () => {},
  });
  const peers = () => desiredPeers(SELF, table.rows(), [key(1)]);
  return { table, netlink, routes, ipcache, sink, peers };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

test('remote nodes join the local table: peers, tunnel routes and strict ranges; no native route', async (t) => {
  const { table, netlink, sink, peers } = setup();
  sink.upsertNode('c2', record(1, { WireguardPubKey: key(21) }), addresses(1));
  sink.upsertNode(
    'c2',
    record(2, { WireguardPubKey: key(22), WireguardPort: 51872 }),
    addresses(2),
  );
  await settle();
  const p = peers();
  t.deepEqual(
    [...p.peers.values()].map((x) => [x.node, x.endpoint, x.allowedIPs]),
    [
      ['c1/n2', '172.30.0.12:51871', ['10.1.2.0/24']],
      ['c2/n1', '172.30.0.21:51871', ['10.2.1.0/24']],
      ['c2/n2', '172.30.0.22:51872', ['10.2.2.0/24']],
    ],
  );
  t.deepEqual(
    tunnelRoutes(SELF, table.rows(), 'isthmus_wg0').map((r) => r.dst),
    ['10.1.2.0/24', '10.2.1.0/24', '10.2.2.0/24'],
  );
  // strict mode's MESH ranges are the table's pod CIDRs (WireguardAgent.afterTableChange)
  t.deepEqual(
    table.rows().flatMap((n) => n.podCIDRs),
    ['10.1.1.0/24', '10.1.2.0/24', '10.2.1.0/24', '10.2.2.0/24'],
  );
  t.deepEqual([...netlink.routes], [], 'no native route to an encrypted remote node');
});

test('a remote node without a key: no peer, yet its pods route into the tunnel; a rotating key is handshake-only', async (t) => {
  const { table, netlink, sink, peers } = setup();
  sink.upsertNode('c2', record(1), addresses(1));
  await settle();
  t.deepEqual(
    peers().rows.find((r) => r.node === 'c2/n1'),
    {
      state: 'waiting',
      node: 'c2/n1',
      reason: 'no WireGuard key published',
    },
  );
  t.true(tunnelRoutes(SELF, table.rows(), 'isthmus_wg0').some((r) => r.dst === '10.2.1.0/24'));
  t.deepEqual([...netlink.routes], [], 'never a plaintext route, key or not');
  const rotating = {
    WireguardPubKey: key(21),
    WireguardPubKeyNext: key(31),
    WireguardPortNext: 51872,
  };
  sink.upsertNode('c2', record(1, rotating), addresses(1));
  const next = peers().peers.get(key(31));
  t.deepEqual(next && [next.node, next.endpoint, next.allowedIPs], [
    'c2/n1',
    '172.30.0.21:51872',
    [],
  ]);
  t.deepEqual(peers().peers.get(key(21))?.allowedIPs, ['10.2.1.0/24']);
});

test('a remote key equal to a local node key is refused for both, naming both', (t) => {
  const { sink, peers } = setup();
  sink.upsertNode('c2', record(1, { WireguardPubKey: key(2) }), addresses(1));
  const p = peers();
  for (const node of ['c1/n2', 'c2/n1'])
    t.like(
      p.rows.find((r) => r.node === node),
      { state: 'refused' },
    );
  t.regex(JSON.stringify(p.rows.find((r) => r.node === 'c2/n1')), /also claimed by c1\/n2/);
  t.false([...p.peers.values()].some((x) => x.node === 'c1/n2' || x.node === 'c2/n1'));
  const own = setup();
  own.sink.upsertNode('c2', record(1, { WireguardPubKey: key(1) }), addresses(1));
  t.regex(JSON.stringify(own.peers().rows), /also claimed by c1\/n1/, "this node's own key");
});

test('a deleted remote node loses its peer on the device', async (t) => {
  const { table, sink } = setup();
  const wg = new FakeWg(key(1));
  const peers = new PeerReconciler(wg, SELF, () => [key(1)]);
  sink.upsertNode('c2', record(1, { WireguardPubKey: key(21) }), addresses(1));
  await peers.prune(table.rows());
  t.true(wg.peers.has(key(21)));
  sink.deleteNode('c2', record(1));
  await peers.prune(table.rows());
  t.false(wg.peers.has(key(21)));
  t.true(wg.peers.has(key(2)), 'the local peer stays');
});

test('pod IPs hosted outside a node pod CIDR become its allowed IPs (local and remote)', async (t) => {
  const { table, ipcache, sink, peers } = setup();
  sink.upsertNode('c2', record(1, { WireguardPubKey: key(21) }), addresses(1));
  let changes = 0;
  const stop = table.hosted.follow(ipcache, () => changes++);
  t.teardown(stop);
  ipcache.upsert('remote', { cidr: '10.9.0.5/32', identity: 0x20100, hostIp: '172.30.0.21' });
  ipcache.upsert('remote', { cidr: '10.2.1.9/32', identity: 0x20100, hostIp: '172.30.0.21' });
  ipcache.upsert('endpoint', { cidr: '10.8.0.7/32', identity: 0x10100, hostIp: '172.30.0.12' });
  // a node address is never a pod, even with a host IP (the tunnel's own UDP goes there)
  ipcache.upsert('node', { cidr: '172.30.0.21/32', identity: 6, hostIp: '172.30.0.21' });
  t.deepEqual(peers().peers.get(key(21))?.allowedIPs, ['10.2.1.0/24', '10.9.0.5/32']);
  t.deepEqual(peers().peers.get(key(2))?.allowedIPs, ['10.1.2.0/24', '10.8.0.7/32']);
  t.true(tunnelRoutes(SELF, table.rows(), 'isthmus_wg0').some((r) => r.dst === '10.9.0.5/32'));
  ipcache.delete('remote', '10.9.0.5/32');
  t.deepEqual(peers().peers.get(key(21))?.allowedIPs, ['10.2.1.0/24']);
  t.true(changes >= 3);
});
