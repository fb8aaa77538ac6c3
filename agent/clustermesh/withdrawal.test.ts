import test from 'ava';
import { ServiceTable } from '../services/table.ts';
import type { Backend } from '../services/types.ts';
import { RemoteServices, WithdrawalClock } from './withdrawal.ts';

const backend = (addr: string): Backend => ({
  addr,
  ready: true,
  ports: { http: { port: 8080, protocol: 'TCP' } },
});

function setup() {
  const table = new ServiceTable();
  const services = new RemoteServices(table);
  let now = 0;
  const clock = new WithdrawalClock(services, 1000, () => now);
  const remoteAddrs = () => table.frontends().flatMap((f) => f.backends.map((b) => b.addr));
  return { table, services, clock, remoteAddrs, at: (t: number) => (now = t) };
}

test('a disconnected remote keeps its backends until the withdrawal time, then loses them', (t) => {
  const { table, services, clock, remoteAddrs, at } = setup();
  table.upsertService({
    namespace: 'prod',
    name: 'echo',
    clusterIPs: ['10.96.0.10'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    annotations: { 'service.cilium.io/global': 'true' },
  });
  services.upsert('c2', 'prod', 'echo', [backend('10.2.0.5')]);
  t.deepEqual(remoteAddrs(), ['10.2.0.5']);
  clock.observe([{ cluster: 'c2', state: 'disconnected' }]);
  at(999);
  clock.observe([{ cluster: 'c2', state: 'disconnected' }]);
  t.deepEqual(remoteAddrs(), ['10.2.0.5'], 'kept before the withdrawal time');
  at(1000);
  clock.observe([{ cluster: 'c2', state: 'disconnected' }]);
  t.deepEqual(remoteAddrs(), [], 'withdrawn at the withdrawal time');
  t.deepEqual(services.withdrawnClusters(), ['c2']);
  at(5000);
  clock.observe([{ cluster: 'c2', state: 'connected' }]);
  t.deepEqual(remoteAddrs(), ['10.2.0.5'], 'restored on reconnect without a relist');
  t.deepEqual(services.withdrawnClusters(), []);
});

test('changes while withdrawn are remembered and applied on restore; a short outage withdraws nothing', (t) => {
  const { table, services, clock, remoteAddrs, at } = setup();
  table.upsertService({
    namespace: 'prod',
    name: 'echo',
    clusterIPs: ['10.96.0.10'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    annotations: { 'service.cilium.io/global': 'true' },
  });
  services.upsert('c2', 'prod', 'echo', [backend('10.2.0.5')]);
  clock.observe([{ cluster: 'c2', state: 'refused' }]);
  at(500);
  clock.observe([{ cluster: 'c2', state: 'connected' }]);
  at(1400);
  clock.observe([{ cluster: 'c2', state: 'disconnected' }]);
  t.deepEqual(remoteAddrs(), ['10.2.0.5'], 'the clock restarted with the new outage');
  at(2400);
  clock.observe([{ cluster: 'c2', state: 'disconnected' }]);
  t.deepEqual(remoteAddrs(), []);
  services.upsert('c2', 'prod', 'echo', [backend('10.2.0.6')]);
  t.deepEqual(remoteAddrs(), [], 'withheld while withdrawn');
  clock.observe([{ cluster: 'c2', state: 'connected' }]);
  t.deepEqual(remoteAddrs(), ['10.2.0.6']);
  services.delete('c2', 'prod', 'echo');
  t.deepEqual(remoteAddrs(), []);
});
