import test from 'ava';
import { MeshTable } from '../../clustermesh/kvstore/index.ts';
import { IpcacheTable } from '../ipcache/table.ts';
import { ReservedIdentity } from '../identity/types.ts';
import type { NodeRoute } from '../routing/types.ts';
import { localFeeder } from './mesh.ts';

const LOCAL = { name: 'c1', id: 1 };

function setup(nodes: NodeRoute[], recheckMs = 20) {
  const mesh = new MeshTable(LOCAL);
  const ipcache = new IpcacheTable();
  let reads = 0;
  const feeder = localFeeder(
    mesh,
    LOCAL,
    () => {
      reads++;
      return nodes.map((n) => ({ ...n }));
    },
    recheckMs,
  );
  const unsubscribe = ipcache.onChange(feeder.feed);
  const names = () => [...mesh.nodesOf('c1')].map((n) => `${n.name} ${n.podCidrs.join(',')}`);
  return {
    mesh,
    ipcache,
    names,
    reads: () => reads,
    stop: () => {
      unsubscribe();
      feeder.stop();
    },
  };
}

const node = (i: number): NodeRoute => ({
  name: `n${i}`,
  underlayIP: `172.30.0.${i}`,
  podCIDR: `10.1.${i}.0/24`,
});

test('local nodes are in the mesh view from the start and follow node rows at once', (t) => {
  const nodes = [node(1)];
  const s = setup(nodes);
  t.teardown(s.stop);
  t.deepEqual(s.names(), ['n1 10.1.1.0/24']);
  nodes.push(node(2));
  s.ipcache.upsert('node', { cidr: '172.30.0.2', identity: ReservedIdentity['remote-node'] });
  t.deepEqual(s.names(), ['n1 10.1.1.0/24', 'n2 10.1.2.0/24']);
  nodes.splice(1, 1);
  s.ipcache.delete('node', '172.30.0.2');
  t.deepEqual(s.names(), ['n1 10.1.1.0/24']);
});

test('remote pod rows do not read the local node list on every change', async (t) => {
  const s = setup(
    Array.from({ length: 1000 }, (_, i) => node(i)),
    50,
  );
  t.teardown(s.stop);
  const before = s.reads();
  for (let k = 0; k < 5000; k++)
    s.ipcache.upsert('remote', { cidr: `10.2.${k >> 8}.${k & 255}`, identity: (2 << 16) + 1 });
  for (let k = 0; k < 5000; k++) s.ipcache.delete('remote', `10.2.${k >> 8}.${k & 255}`);
  t.is(s.reads(), before, 'no synchronous read for 10,000 remote pod changes');
  await new Promise((r) => setTimeout(r, 120));
  t.is(s.reads(), before + 1, 'one deferred check after them');
});

test('a pod CIDR change that no node row shows is picked up within the recheck period', async (t) => {
  const nodes = [node(1)];
  const s = setup(nodes, 20);
  t.teardown(s.stop);
  nodes[0] = { ...node(1), podCIDR: '10.1.99.0/24' };
  s.ipcache.upsert('remote', { cidr: '10.2.0.5', identity: (2 << 16) + 1 });
  t.deepEqual(s.names(), ['n1 10.1.1.0/24'], 'not yet');
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(s.names(), ['n1 10.1.99.0/24']);
});

test('local pod IPs are owned by the local cluster in the mesh view', (t) => {
  const s = setup([node(1)]);
  t.teardown(s.stop);
  s.ipcache.upsert('endpoint', { cidr: '10.1.1.7', identity: (1 << 16) + 3 });
  t.is(s.mesh.endpointOwner('10.1.1.7'), 'c1');
  s.ipcache.delete('endpoint', '10.1.1.7');
  t.is(s.mesh.endpointOwner('10.1.1.7'), undefined);
});
