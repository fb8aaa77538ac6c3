// The sink against a real IpcacheTable and ServiceTable and a recording route reconciler.
import test from 'ava';
import type { NodeRecord } from '../../clustermesh/kvstore/index.ts';
import { IpcacheTable } from '../ipcache/table.ts';
import type { NodeRouteReconciler } from '../routing/reconciler.ts';
import type { NodeRoute } from '../routing/types.ts';
import { ServiceTable } from '../services/table.ts';
import { AgentMeshSink } from './sink.ts';

function setup() {
  const identities = new Map<number, ReadonlyMap<string, string>>();
  const routes = new Map<string, NodeRoute>();
  const ipcache = new IpcacheTable();
  const services = new ServiceTable();
  const sink = new AgentMeshSink({
    upsertIdentity: (id, labels) => identities.set(id, labels),
    removeIdentity: (id) => identities.delete(id),
    ipcache,
    services,
    routes: {
      update: async (n: NodeRoute) => void routes.set(n.name, n),
      delete: async (name: string) => void routes.delete(name),
    } as unknown as NodeRouteReconciler,
    log: () => {},
  });
  return { sink, identities, routes, ipcache, services };
}

const node = (name: string, ip: string): NodeRecord => ({
  Name: name,
  Cluster: 'c2',
  ClusterID: 2,
  IPAddresses: [{ Type: 'InternalIP', IP: ip }],
  IPv4AllocCIDR: null,
  IPv6AllocCIDR: null,
  Source: 'custom-resource',
  EncryptionKey: 0,
  WireguardPubKey: '',
});

test('identities reach the engine with bare k8s keys; deletes remove them', (t) => {
  const { sink, identities } = setup();
  const id = {
    id: 0x20005,
    labels: [
      { source: 'k8s', key: 'app', value: 'db' },
      { source: 'k8s', key: 'io.cilium.k8s.policy.cluster', value: 'c2' },
    ],
  };
  sink.upsertIdentity('c2', id);
  t.deepEqual(
    [...identities.get(0x20005)!],
    [
      ['app', 'db'],
      ['io.cilium.k8s.policy.cluster', 'c2'],
    ],
  );
  sink.deleteIdentity('c2', id);
  t.false(identities.has(0x20005));
  t.deepEqual(sink.counters.c2!.identities, { upsert: 1, delete: 1 });
});

test('remote pod IPs map to their identity and host; nodes become remote-node rows and routes', (t) => {
  const { sink, ipcache, routes } = setup();
  sink.upsertNode('c2', node('n1', '172.30.0.6'), {
    podCidrs: ['10.2.1.0/24'],
    ips: ['172.30.0.6'],
  });
  t.deepEqual(routes.get('c2/n1'), {
    name: 'c2/n1',
    underlayIP: '172.30.0.6',
    podCIDR: '10.2.1.0/24',
  });
  t.is(ipcache.get('172.30.0.6')?.identity, 6);
  const entry = {
    IP: '10.2.1.7',
    Mask: null,
    HostIP: '172.30.0.6',
    ID: 0x20005,
    Key: 0,
    Metadata: '',
  };
  sink.upsertIpcache('c2', entry);
  t.deepEqual(ipcache.get('10.2.1.7/32'), {
    cidr: '10.2.1.7/32',
    identity: 0x20005,
    hostIp: '172.30.0.6',
  });
  sink.deleteIpcache('c2', entry);
  t.is(ipcache.get('10.2.1.7/32'), undefined);
  sink.deleteNode('c2', node('n1', '172.30.0.6'));
  t.is(ipcache.get('172.30.0.6'), undefined);
  t.false(routes.has('c2/n1'));
  t.deepEqual(sink.remoteNodes(), []);
});

test('a local row of the same prefix wins over a remote one', (t) => {
  const { sink, ipcache } = setup();
  ipcache.upsert('local', { cidr: '10.2.1.7/32', identity: 0x10003 });
  sink.upsertIpcache('c2', {
    IP: '10.2.1.7',
    Mask: null,
    HostIP: '172.30.0.6',
    ID: 0x20005,
    Key: 0,
    Metadata: '',
  });
  t.is(ipcache.get('10.2.1.7/32')?.identity, 0x10003);
});

test('global service backends of a remote go to the service table', (t) => {
  const { sink, services } = setup();
  services.upsertService({
    namespace: 'prod',
    name: 'echo',
    clusterIPs: ['172.31.1.10'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    annotations: { 'service.cilium.io/global': 'true' },
  });
  const svc = {
    cluster: 'c2',
    namespace: 'prod',
    name: 'echo',
    frontends: {},
    labels: {},
    selector: {},
    includeExternal: true,
    shared: true,
    clusterID: 2,
    backends: { '10.2.1.7': { http: { Protocol: 'TCP', Port: 8080 } } },
  };
  sink.upsertService('c2', svc);
  const view = services.views().find((v) => v.name === 'echo');
  t.deepEqual(
    view?.backends.map((b) => [b.cluster, b.addr]),
    [['c2', '10.2.1.7']],
  );
  sink.deleteService('c2', svc);
  t.deepEqual(services.views().find((v) => v.name === 'echo')?.backends ?? [], []);
});
