// The clustermesh API server against the real parts: the cluster's Kubernetes API (embedded API
// server on a real etcd) and a secured mesh etcd (TLS, client-cert auth, the writer user), both
// in a test namespace. Every prefix is mirrored in Cilium's layout, deletes follow deletions,
// synced canaries come after their prefix's initial listing, and a restart rewrites nothing.
import test from 'ava';
import {
  clusterConfigKey,
  decodeClusterConfig,
  decodeClusterService,
  decodeIPIdentityPair,
  decodeLabels,
  decodeNode,
  identityKey,
  ipcacheKey,
  nodeKey,
  nodePodCidrs,
  serviceKey,
  syncedKey,
  SYNCED_STATE_PREFIXES,
} from '../kvstore/index.ts';
import { startMirrorFixture } from './test-support.ts';
import {
  CLUSTER,
  createNamespace,
  currentRevision,
  defs,
  endpoint,
  eventually,
  wgKey,
  catchUp,
  identity,
  meshState,
  node,
  nodeStatus,
  recordEvents,
  service,
  slice,
} from './test-objects.ts';

const canaries = SYNCED_STATE_PREFIXES.map((p) => syncedKey(CLUSTER.name, p));

test.serial(
  'mirrors identities, endpoints, nodes and shared global services; deletes follow',
  async (t) => {
    const f = await startMirrorFixture(t, 'h10mir', CLUSTER);
    const { api } = f;
    await createNamespace(api, 'prod');
    await api.create(defs.CiliumIdentities, identity(65537, 'db'));
    await api.create(defs.CiliumEndpoints, endpoint('db-0', '10.1.1.7', 65537, '172.18.0.5'));
    await api.create(defs.Nodes, node('n1', '172.18.0.5', '10.1.1.0/24', wgKey(1)));
    await f.patchStatus('/api/v1/nodes/n1', nodeStatus('172.18.0.5'));
    const g = await api.create(defs.Services, service('g', { 'service.cilium.io/global': 'true' }));
    await api.create(defs.EndpointSlices, slice('g-1', 'g', ['10.1.1.7'], ['10.1.1.8']));
    await api.create(defs.Services, service('plain', {}));
    await api.create(
      defs.Services,
      service('private', {
        'service.cilium.io/global': 'true',
        'service.cilium.io/shared': 'false',
      }),
    );

    const server = await f.startServer();
    await server.synced;
    const state = await meshState(f.meshRoot);
    const expected = [
      clusterConfigKey('c1'),
      ...canaries,
      identityKey(65537),
      ipcacheKey('10.1.1.7'),
      nodeKey('c1', 'n1'),
      serviceKey('c1', 'prod', 'g'),
    ];
    t.deepEqual([...state.keys()].sort(), expected.sort());

    const config = decodeClusterConfig(state.get(clusterConfigKey('c1'))!);
    t.like(config, { ok: true, value: { id: 1, capabilities: { syncedCanaries: true } } });
    t.is(
      state.get(identityKey(65537)),
      'k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c1;k8s:io.kubernetes.pod.namespace=prod;',
    );
    t.true(decodeLabels(state.get(identityKey(65537))!).ok);
    const ep = decodeIPIdentityPair(state.get(ipcacheKey('10.1.1.7'))!);
    t.like(ep, {
      ok: true,
      value: {
        IP: '10.1.1.7',
        Mask: null,
        HostIP: '172.18.0.5',
        ID: 65537,
        K8sNamespace: 'prod',
        K8sPodName: 'db-0',
      },
    });
    t.deepEqual(ep.ok && ep.value.NamedPorts, [{ Name: 'http', Port: 8080, Protocol: 'TCP' }]);
    const n1 = decodeNode(state.get(nodeKey('c1', 'n1'))!);
    t.like(n1, {
      ok: true,
      value: {
        Name: 'n1',
        Cluster: 'c1',
        ClusterID: 1,
        WireguardPubKey: wgKey(1),
        BootID: 'boot-1',
      },
    });
    t.deepEqual(n1.ok && n1.value.IPAddresses, [{ Type: 'InternalIP', IP: '172.18.0.5' }]);
    t.deepEqual(n1.ok && nodePodCidrs(n1.value), ['10.1.1.0/24']);
    const svc = decodeClusterService(state.get(serviceKey('c1', 'prod', 'g'))!);
    const clusterIp = (g.spec as { clusterIP: string }).clusterIP;
    t.like(svc, {
      ok: true,
      value: { cluster: 'c1', namespace: 'prod', name: 'g', shared: true, clusterID: 1 },
    });
    t.deepEqual(svc.ok && svc.value.frontends, {
      [clusterIp]: { http: { Protocol: 'TCP', Port: 80 } },
    });
    // the not-ready backend is not exported
    t.deepEqual(svc.ok && svc.value.backends, {
      '10.1.1.7': { http: { Protocol: 'TCP', Port: 8080 } },
    });

    // Updates and creations.
    await api.create(defs.CiliumIdentities, identity(65538, 'web'));
    await api.replace(defs.CiliumEndpoints, {
      ...(await api.get(defs.CiliumEndpoints, 'db-0', 'prod')),
      ...endpoint('db-0', '10.1.1.9', 65538, '172.18.0.5'),
    });
    const n1obj = await api.get(defs.Nodes, 'n1');
    n1obj.metadata.annotations = { 'network.cilium.io/wg-pub-key': wgKey(2) };
    await api.replace(defs.Nodes, n1obj);
    await api.create(defs.EndpointSlices, slice('g-2', 'g', ['10.1.1.10']));
    const plain = await api.get(defs.Services, 'plain', 'prod');
    plain.metadata.annotations = { 'service.cilium.io/global': 'true' };
    await api.replace(defs.Services, plain);
    await eventually('the updates in the mesh', async () => {
      const s = await meshState(f.meshRoot);
      const n = decodeNode(s.get(nodeKey('c1', 'n1')) ?? '');
      const gs = decodeClusterService(s.get(serviceKey('c1', 'prod', 'g')) ?? '');
      const ready =
        s.has(identityKey(65538)) &&
        !s.has(ipcacheKey('10.1.1.7')) &&
        s.has(ipcacheKey('10.1.1.9')) &&
        s.has(serviceKey('c1', 'prod', 'plain')) &&
        n.ok &&
        n.value.WireguardPubKey === wgKey(2) &&
        gs.ok &&
        Object.keys(gs.value.backends).length === 2;
      return ready ? s : undefined;
    });
    const moved = decodeIPIdentityPair((await meshState(f.meshRoot)).get(ipcacheKey('10.1.1.9'))!);
    t.like(moved, { ok: true, value: { ID: 65538 } });

    // Deletions, and a global service turning private.
    await api.delete(defs.CiliumIdentities, '65537');
    await api.delete(defs.CiliumEndpoints, 'db-0', 'prod');
    await api.delete(defs.Nodes, 'n1');
    const gobj = await api.get(defs.Services, 'g', 'prod');
    gobj.metadata.annotations = {
      'service.cilium.io/global': 'true',
      'service.cilium.io/shared': 'false',
    };
    await api.replace(defs.Services, gobj);
    await api.delete(defs.Services, 'plain', 'prod');
    const final = await eventually('the deletions in the mesh', async () => {
      const s = await meshState(f.meshRoot);
      return s.size === 2 + canaries.length ? s : undefined;
    });
    t.deepEqual(
      [...final.keys()].sort(),
      [clusterConfigKey('c1'), ...canaries, identityKey(65538)].sort(),
    );
    t.is(server.status().writer.failedTxns, 0);

    // Drift behind the server's back (root may write) is repaired by the full pass.
    const identityValue = final.get(identityKey(65538))!;
    await f.meshRoot.delete().key(identityKey(65538));
    await f.meshRoot.put(clusterConfigKey('c1')).value('{"id":9}');
    await f.meshRoot.put(ipcacheKey('10.9.9.9')).value('{}');
    t.is(await server.resync(), 3);
    const repaired = await meshState(f.meshRoot);
    t.is(repaired.get(identityKey(65538)), identityValue);
    t.deepEqual(repaired.get(clusterConfigKey('c1')), final.get(clusterConfigKey('c1')));
    t.false(repaired.has(ipcacheKey('10.9.9.9')));
  },
);

test.serial(
  'synced canaries are written after the initial sync of their prefix, and only then',
  async (t) => {
    const f = await startMirrorFixture(t, 'h10syn', CLUSTER);
    const { api } = f;
    await createNamespace(api, 'prod');
    for (let i = 0; i < 100; i++) {
      await api.create(defs.CiliumIdentities, identity(65537 + i, `app${i}`));
      await api.create(
        defs.CiliumEndpoints,
        endpoint(`p${i}`, `10.1.2.${i + 1}`, 65537 + i, '172.18.0.5'),
      );
    }
    await api.create(defs.Nodes, node('n1', '172.18.0.5', '10.1.2.0/24'));
    await api.create(defs.Services, service('g', { 'service.cilium.io/global': 'true' }));
    const before = await currentRevision(f.meshRoot);
    const rec = await recordEvents(f.meshRoot, before + 1);
    t.teardown(() => rec.cancel());

    // small batches and a low rate, so the listing is written over many transactions
    const server = await f.startServer({ writer: { maxOpsPerTxn: 16, maxOpsPerSecond: 500 } });
    t.false(canaries.some((k) => rec.events.some((e) => e.key === k)));
    await server.synced;
    await eventually('all canary events', async () =>
      canaries.every((k) => rec.events.some((e) => e.key === k)) ? true : undefined,
    );
    t.true(server.status().writer.txns > 10);
    for (const prefix of SYNCED_STATE_PREFIXES) {
      const canary = rec.events.find((e) => e.key === syncedKey('c1', prefix))!;
      const state = rec.events.filter((e) => e.key.startsWith(`${prefix}/`));
      t.true(state.length > 0, prefix);
      t.true(
        state.every((e) => e.revision < canary.revision),
        `${prefix}: every state key is written before its canary`,
      );
      t.true(!Number.isNaN(Date.parse(canary.value)), canary.value);
    }
    t.is(rec.events.filter((e) => e.key.startsWith('cilium/state/ip/v1/')).length, 100);
    t.is(rec.events.filter((e) => e.key.startsWith('cilium/state/identities/v1/')).length, 100);
  },
);

test.serial(
  'a restart deletes and rewrites nothing unchanged; what changed while down is applied',
  async (t) => {
    const f = await startMirrorFixture(t, 'h10rst', CLUSTER);
    const { api } = f;
    await createNamespace(api, 'prod');
    for (let i = 0; i < 20; i++) {
      await api.create(defs.CiliumIdentities, identity(65537 + i, `app${i}`));
      await api.create(
        defs.CiliumEndpoints,
        endpoint(`p${i}`, `10.1.3.${i + 1}`, 65537 + i, '172.18.0.5'),
      );
    }
    for (const n of ['n1', 'n2']) {
      await api.create(
        defs.Nodes,
        node(n, n === 'n1' ? '172.18.0.5' : '172.18.0.6', '10.1.3.0/24', wgKey(n === 'n1' ? 3 : 4)),
      );
    }
    await api.create(defs.Services, service('g', { 'service.cilium.io/global': 'true' }));
    await api.create(defs.EndpointSlices, slice('g-1', 'g', ['10.1.3.1']));
    const first = await f.startServer();
    await first.synced;
    const before = await meshState(f.meshRoot);
    const rec = await recordEvents(f.meshRoot, (await currentRevision(f.meshRoot)) + 1);
    t.teardown(() => rec.cancel());
    await first.stop(); // no clean-up on stop: as after a crash

    // Changes while no server runs.
    await api.delete(defs.CiliumEndpoints, 'p3', 'prod');
    await api.delete(defs.Nodes, 'n2');
    await api.create(defs.CiliumIdentities, identity(70000, 'late'));
    const n1 = await api.get(defs.Nodes, 'n1');
    n1.metadata.annotations = { 'network.cilium.io/wg-pub-key': wgKey(9) };
    await api.replace(defs.Nodes, n1);

    const second = await f.startServer();
    await second.synced;
    await catchUp(f.meshRoot, rec);
    const deletes = rec.events.filter((e) => e.type === 'delete').map((e) => e.key);
    const puts = rec.events.filter((e) => e.type === 'put').map((e) => e.key);
    t.deepEqual(deletes.sort(), [ipcacheKey('10.1.3.4'), nodeKey('c1', 'n2')].sort());
    // canaries get the new sync time (unless written in the same second as the first ones)
    t.deepEqual(
      puts.filter((k) => !canaries.includes(k)).sort(),
      [identityKey(70000), nodeKey('c1', 'n1')].sort(),
    );
    t.is(new Set(puts).size, puts.length, 'each changed key written once');
    const after = await meshState(f.meshRoot);
    for (const [key, value] of before) {
      if (canaries.includes(key) || deletes.includes(key) || key === nodeKey('c1', 'n1')) continue;
      t.is(after.get(key), value, key);
    }
    t.true(second.status().writer.unchanged >= 20 + 19 + 2);
    t.like(decodeNode(after.get(nodeKey('c1', 'n1'))!), {
      ok: true,
      value: { WireguardPubKey: wgKey(9) },
    });
  },
);
