// The agent's control plane on fakes (in-memory Kubernetes API, datapath maps, links, routes):
// CNI ADD binds a pod to a cluster-wide identity, its policy and its endpoint object; relabels,
// invalid policies and status convergence, all without root.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createFakeDatapath } from '../datapath/fake.ts';
import { BpfEndpointDatapath } from '../endpoint/bpf-datapath.ts';
import { FakePodLinks } from '../endpoint/fake-links.ts';
import { EndpointManager } from '../endpoint/manager.ts';
import { FakeKubeApi } from '../k8s/fake-api.ts';
import {
  CiliumEndpoints,
  CiliumIdentities,
  CiliumNetworkPolicies,
  Namespaces,
  NetworkPolicies,
  Nodes,
  Pods,
  type Pod,
} from '../k8s/resources.ts';
import { FakeRouteNetlink } from '../routing/fake-netlink.ts';
import { NodeRouteReconciler } from '../routing/reconciler.ts';
import { AgentControlPlane } from './control-plane.ts';
import type { AgentStatus } from './types.ts';

const pod = (name: string, app: string): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'x', labels: { app } },
  spec: {
    nodeName: 'n1',
    containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 80 }] }],
  },
});

/** The manager only checks that CNI_NETNS exists: a plain file per pod stands in. */
const netnsDir = mkdtempSync(join(tmpdir(), 'isthmus-cp-test-'));
test.after.always(() => rmSync(netnsDir, { recursive: true, force: true }));
function netnsFile(name: string): string {
  const path = join(netnsDir, name);
  writeFileSync(path, '');
  return path;
}

async function setup() {
  const api = new FakeKubeApi();
  await api.create(Namespaces, { metadata: { name: 'x', labels: { team: 't' } } });
  await api.create(Nodes, {
    metadata: { name: 'n2' },
    spec: { podCIDR: '10.1.1.0/24' },
    status: { addresses: [{ type: 'InternalIP', address: '172.30.0.4' }] },
  });
  await api.create(Pods, pod('a', 'a'));
  await api.create(Pods, pod('b', 'b'));
  await api.create(NetworkPolicies, {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'b-from-a', namespace: 'x' },
    spec: {
      podSelector: { matchLabels: { app: 'b' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
    },
  } as never);
  const dp = createFakeDatapath();
  const netlink = new FakeRouteNetlink();
  const routes = new NodeRouteReconciler('n1', netlink, { intervalMs: 0 });
  const logs: string[] = [];
  const cp = new AgentControlPlane(
    {
      nodeName: 'n1',
      nodeIP: '172.30.0.3',
      routerIP: '10.1.0.1',
      cluster: { name: 'c1', id: 1 },
      kubeconfig: '',
      fullPassIntervalMs: 0,
    },
    {
      maps: dp,
      inner: new BpfEndpointDatapath(dp),
      routes,
      staticNodes: [],
      log: (msg) => logs.push(msg),
      api,
    },
  );
  const manager = new EndpointManager({
    podCIDR: '10.1.0.0/24',
    datapath: cp.endpoints,
    links: new FakePodLinks(),
  });
  cp.endpoints.setManager(manager);
  await cp.start();
  const add = async (name: string) => {
    const r = await manager.handle({
      op: 'add',
      containerId: `ctr-${name}`,
      netns: netnsFile(name),
      ifname: 'eth0',
      podNamespace: 'x',
      podName: name,
      namedPorts: [{ name: 'http', port: 80, protocol: 'TCP' }],
    });
    if (!r.ok) throw new Error(`${r.error.msg}: ${r.error.details}`);
    return r.result!.endpoint;
  };
  return { api, dp, cp, manager, netlink, logs, add };
}

async function until(cp: AgentControlPlane, ok: (s: AgentStatus) => boolean): Promise<AgentStatus> {
  for (let i = 0; i < 200; i++) {
    const s = await cp.status();
    if (ok(s)) return s;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cp.status();
}

test('CNI ADD: identity from the API labels, row, policy and endpoint object; status converges', async (t) => {
  const { api, dp, cp, netlink, add } = await setup();
  const a = await add('a');
  const b = await add('b');
  t.true(a.identity >= (1 << 16) + 256, 'a cluster-1 identity');
  t.not(a.identity, b.identity);
  // the policy is in the maps when ADD returns
  t.true(dp.endpoints.get(b.ip)!.ingressEnforced);
  t.true(dp.policy.read(b.id).some((e) => e.peer === a.identity && e.direction === 'ingress'));
  t.is(dp.endpoints.get(b.ip)!.identity, b.identity);
  // ipcache: own node and router IP are host, the other node remote-node, pods by identity
  t.is(dp.ipcache.get('172.30.0.3/32')?.identity, 1);
  t.is(dp.ipcache.get('10.1.0.1/32')?.identity, 1);
  t.is(dp.ipcache.get('172.30.0.4/32')?.identity, 6);
  t.is(dp.ipcache.get(`${a.ip}/32`)?.identity, a.identity);
  t.deepEqual(await netlink.listOwned(), [{ dst: '10.1.1.0/24', via: '172.30.0.4' }]);
  const cep = await api.get(CiliumEndpoints, 'b', 'x');
  t.is(cep.status?.identity?.id, b.identity);
  t.truthy(await api.get(CiliumIdentities, String(b.identity)));
  const s = await until(cp, (x) => x.converged);
  t.deepEqual(s.pending, []);
  t.deepEqual(
    s.endpoints.map((e) => [e.pod, e.ingressEnforced, e.converged]),
    [
      ['x/a', false, true],
      ['x/b', true, true],
    ],
  );
  t.regex(s.endpoints[0]!.labels, /k8s:io\.cilium\.k8s\.namespace\.labels\.team=t;/);
  await cp.stop();
});

test('relabel: a new identity, the row, the object and the peers entries follow', async (t) => {
  const { api, dp, cp, manager, add } = await setup();
  const a = await add('a');
  const b = await add('b');
  const aId = a.identity;
  const cur = await api.get(Pods, 'a', 'x');
  await api.replace(Pods, { ...cur, metadata: { ...cur.metadata, labels: { app: 'a', v: '2' } } });
  const s = await until(
    cp,
    (x) => x.converged && x.endpoints.find((e) => e.pod === 'x/a')!.identity !== aId,
  );
  const a2 = s.endpoints.find((e) => e.pod === 'x/a')!.identity;
  t.not(a2, aId);
  t.is(manager.list().find((e) => e.podName === 'a')!.identity, a2, 'persisted by the manager');
  t.is(dp.endpoints.get(a.ip)!.identity, a2);
  t.is(dp.ipcache.get(`${a.ip}/32`)?.identity, a2);
  const peers = dp.policy.read(b.id).map((e) => e.peer);
  t.true(peers.includes(a2));
  t.is((await api.get(CiliumEndpoints, 'a', 'x')).status?.identity?.id, a2);
  await cp.stop();
});

test('an invalid policy is listed in status; the node keeps enforcing; status waits for new objects', async (t) => {
  const { api, dp, cp, add } = await setup();
  await add('a');
  const b = await add('b');
  const before = dp.policy.read(b.id);
  await api.create(CiliumNetworkPolicies, {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'fqdn', namespace: 'x' },
    spec: { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'example.com' }] }] },
  });
  const s = await until(cp, (x) => x.policies.invalid.length === 1 && x.converged);
  t.is(s.policies.invalid[0]!.key, 'CiliumNetworkPolicy/x/fqdn');
  t.regex(s.policies.invalid[0]!.reason, /toFQDNs/);
  t.deepEqual(dp.policy.read(b.id), before);
  t.false(dp.endpoints.get(b.ip)!.egressEnforced);
  await cp.stop();
});
