import test from 'ava';
import { createFakeDatapath } from '../datapath/fake.ts';
import { LbReconciler } from './lb-reconciler.ts';
import { ServiceTable } from './table.ts';
import type { Backend, ServiceSpec } from './types.ts';

const spec = (annotations: Record<string, string> = {}): ServiceSpec => ({
  namespace: 'prod',
  name: 'echo',
  clusterIPs: ['10.96.0.10'],
  ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  annotations,
});
const b = (addr: string, port = 8080, ready = true): Backend => ({
  addr,
  ports: { http: { port, protocol: 'TCP' } },
  ready,
});

test('frontends resolve backend ports by service port name and follow affinity', (t) => {
  const table = new ServiceTable();
  table.upsertService(
    spec({ 'service.cilium.io/global': 'true', 'service.cilium.io/affinity': 'local' }),
  );
  table.upsertSlice('prod/echo-1', 'prod', 'echo', [b('10.1.0.5'), b('10.1.0.6', 9090)]);
  table.upsertRemoteBackends('c2', 'prod', 'echo', [b('10.2.0.5')]);
  t.deepEqual(table.frontends()[0]!.backends, [
    { addr: '10.1.0.5', port: 8080 },
    { addr: '10.1.0.6', port: 9090 },
  ]);
  table.deleteSlice('prod/echo-1');
  t.deepEqual(table.frontends()[0]!.backends, [{ addr: '10.2.0.5', port: 8080 }]);
  const view = table.views()[0]!;
  t.deepEqual(
    view.backends.map((x) => [x.cluster, x.addr, x.inUse]),
    [['c2', '10.2.0.5', true]],
  );
  table.deleteRemoteCluster('c2');
  t.deepEqual(table.frontends()[0]!.backends, []);
});

test('exportable lists only global shared services', (t) => {
  const table = new ServiceTable();
  table.upsertService(
    spec({ 'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'false' }),
  );
  t.deepEqual(table.exportable(), []);
  table.upsertService(spec({ 'service.cilium.io/global': 'true' }));
  t.is(table.exportable().length, 1);
});

test('the reconciler keeps backend ids stable, is idempotent and prunes', (t) => {
  const dp = createFakeDatapath();
  const lb = new LbReconciler(dp.lb);
  const fe = (addrs: string[]) => ({
    service: 's',
    addr: '10.96.0.10',
    port: 80,
    protocol: 'TCP' as const,
    backends: addrs.map((addr) => ({ addr, port: 8080 })),
  });
  lb.reconcile([fe(['10.1.0.5', '10.1.0.6'])]);
  const id5 = lb.backendId('10.1.0.5', 8080);
  t.is(lb.reconcile([fe(['10.1.0.5', '10.1.0.6'])]).writes, 0, 'a second pass writes nothing');
  lb.reconcile([fe(['10.1.0.4', '10.1.0.5'])]);
  t.is(lb.backendId('10.1.0.5', 8080), id5);
  t.is(lb.backendId('10.1.0.6', 8080), undefined);
  t.deepEqual([...dp.lb.backends.values()].map((v) => v.addr).sort(), ['10.1.0.4', '10.1.0.5']);
  t.is(dp.lb.services.get({ addr: '10.96.0.10', port: 80, protocol: 6 })?.count, 2);
  t.is([...dp.lb.slots.entries()].length, 2);
  // a restarted agent adopts the ids from the maps
  const again = new LbReconciler(dp.lb);
  t.is(again.backendId('10.1.0.5', 8080), id5);
  t.is(again.reconcile([fe(['10.1.0.4', '10.1.0.5'])]).writes, 0);
  lb.reconcile([]);
  t.is(
    [...dp.lb.services.entries()].length +
      [...dp.lb.slots.entries()].length +
      [...dp.lb.backends.entries()].length,
    0,
  );
});
