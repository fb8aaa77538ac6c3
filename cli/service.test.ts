import test from 'ava';
import { formatServices } from './service.ts';
import { ServiceTable } from '../agent/services/table.ts';

test('service list table: frontends, backends by cluster with state, annotations, in use', (t) => {
  const table = new ServiceTable();
  table.upsertService({
    namespace: 'prod',
    name: 'echo',
    clusterIPs: ['10.96.0.10'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    annotations: { 'service.cilium.io/global': 'true', 'service.cilium.io/affinity': 'local' },
  });
  const ports = { http: { port: 8080, protocol: 'TCP' as const } };
  table.upsertSlice('prod/echo-1', 'prod', 'echo', [
    { addr: '10.1.0.5', ports, ready: true, podName: 'echo-1' },
  ]);
  table.upsertRemoteBackends('c2', 'prod', 'echo', [{ addr: '10.2.0.5', ports, ready: true }]);
  const text = formatServices([{ cluster: 'c1', node: 'n1', services: table.views() }]);
  t.regex(text, /prod\/echo +\[global, shared=true, affinity=local\]/);
  t.regex(text, /frontend 10\.96\.0\.10:80\/TCP \(http\)/);
  t.regex(
    text,
    /backends in c1 \(local\):\n +10\.1\.0\.5 +ready +in use +http=8080\/TCP +pod echo-1/,
  );
  t.regex(text, /backends in c2:\n +10\.2\.0\.5 +ready +standby/);
});

test('service list table: a service without backends says new connections are refused', (t) => {
  const table = new ServiceTable();
  table.upsertService({
    namespace: 'a',
    name: 'b',
    clusterIPs: ['10.96.0.11'],
    ports: [],
    annotations: { 'service.cilium.io/affinity': 'x' },
  });
  const text = formatServices([{ cluster: 'c1', node: 'n1', services: table.views() }]);
  t.regex(text, /not global; ignored: service\.cilium\.io\/affinity=x/);
  t.regex(text, /no backends: new connections are refused/);
});
