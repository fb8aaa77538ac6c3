// Storage layout, object semantics, error shapes and discovery of the lab API server.
import test from 'ava';
import { CoreV1Api, CustomObjectsApi, NetworkingV1Api } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from './test-support.ts';

const pod = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: name } },
  spec: { containers: [{ name: 'c', image: 'busybox' }], ...extra },
});

async function ns(cp: ControlPlane, name: string) {
  const r = await cp.request('POST', '/api/v1/namespaces', { metadata: { name } });
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
}

test.serial(
  'objects are stored under /registry as JSON with resourceVersion = etcd mod revision',
  async (t) => {
    const cp = await startControlPlane(t);
    await ns(cp, 'prod');
    const created = await cp.request('POST', '/api/v1/namespaces/prod/pods', pod('db'));
    t.is(created.status, 201);
    const meta = created.body.metadata;
    t.regex(meta.uid, /^[0-9a-f-]{36}$/);
    t.regex(meta.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    t.is(meta.generation, 1);

    const etcd = cp.etcd.client();
    t.teardown(() => etcd.close());
    const res = await etcd.kv.range({ key: Buffer.from('/registry/pods/prod/db') });
    const kv = res.kvs[0]!;
    t.is(kv.mod_revision, meta.resourceVersion);
    const stored = JSON.parse(kv.value.toString());
    t.is(stored.metadata.name, 'db');
    t.is(stored.metadata.resourceVersion, undefined);
    t.truthy(await etcd.get('/registry/namespaces/prod').string());

    const list = await cp.request('GET', '/api/v1/pods');
    t.is(list.body.kind, 'PodList');
    t.is(
      list.body.metadata.resourceVersion,
      (await etcd.kv.range({ key: Buffer.from('/') })).header.revision,
    );
  },
);

test.serial(
  'kube-apiserver error shapes: 404, 409 AlreadyExists, 409 Conflict, 422 Invalid, 400, 415',
  async (t) => {
    const cp = await startControlPlane(t);
    await ns(cp, 'e');
    const notFound = await cp.request('GET', '/api/v1/namespaces/e/pods/nope');
    t.like(notFound.body, {
      kind: 'Status',
      status: 'Failure',
      reason: 'NotFound',
      code: 404,
      details: { name: 'nope', kind: 'pods' },
    });
    t.is(notFound.body.message, 'pods "nope" not found');

    const first = await cp.request('POST', '/api/v1/namespaces/e/pods', pod('a'));
    const dup = await cp.request('POST', '/api/v1/namespaces/e/pods', pod('a'));
    t.like(dup.body, { reason: 'AlreadyExists', code: 409 });
    t.is(dup.status, 409);

    const stale = { ...first.body, metadata: { ...first.body.metadata, resourceVersion: '1' } };
    const conflict = await cp.request('PUT', '/api/v1/namespaces/e/pods/a', stale);
    t.like(conflict.body, { reason: 'Conflict', code: 409 });
    t.regex(conflict.body.message, /the object has been modified/);

    const bad = await cp.request('POST', '/api/v1/namespaces/e/pods', {
      metadata: { name: 'X_y', labels: { 'bad key!': 'v' } },
      spec: { containers: [] },
    });
    t.is(bad.status, 422);
    t.is(bad.body.reason, 'Invalid');
    t.deepEqual(bad.body.details.causes.map((c: { field: string }) => c.field).sort(), [
      'metadata.labels',
      'metadata.name',
      'spec.containers',
    ]);

    const wrongNs = await cp.request('POST', '/api/v1/namespaces/e/pods', {
      ...pod('b'),
      metadata: { name: 'b', namespace: 'other' },
    });
    t.like(wrongNs.body, { reason: 'BadRequest', code: 400 });
    const badSelector = await cp.request('GET', '/api/v1/pods?fieldSelector=spec.color%3Dred');
    t.like(badSelector.body, { reason: 'BadRequest', code: 400 });
    const proto = await cp.request(
      'POST',
      '/api/v1/namespaces/e/pods',
      'x',
      'application/vnd.kubernetes.protobuf',
    );
    t.is(proto.status, 400, 'protobuf without the k8s envelope');
    const yaml = await cp.request('POST', '/api/v1/namespaces/e/pods', 'a: b', 'application/yaml');
    t.is(yaml.status, 415);
    const smpOnCrd = await cp.request(
      'PATCH',
      '/apis/cilium.io/v2/ciliumidentities/x',
      {},
      'application/strategic-merge-patch+json',
    );
    t.is(smpOnCrd.status, 415);
  },
);

test.serial(
  'namespaced objects need their namespace; deleting it removes its content',
  async (t) => {
    const cp = await startControlPlane(t);
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const orphan = await cp.request('POST', '/api/v1/namespaces/ghost/pods', pod('p'));
    t.like(orphan.body, { reason: 'NotFound', code: 404, message: 'namespaces "ghost" not found' });

    await core.createNamespace({ body: { metadata: { name: 'gone' } } });
    await core.createNamespace({ body: { metadata: { name: 'kept' } } });
    await core.createNamespacedPod({ namespace: 'gone', body: pod('p') as never });
    await core.createNamespacedPod({ namespace: 'kept', body: pod('p') as never });
    await core.createNamespacedConfigMap({
      namespace: 'gone',
      body: { metadata: { name: 'cm' }, data: { a: 'b' } },
    });
    const np = cp.kubeConfig.makeApiClient(NetworkingV1Api);
    await np.createNamespacedNetworkPolicy({
      namespace: 'gone',
      body: { metadata: { name: 'np' }, spec: { podSelector: {} } },
    });

    const deleted = await cp.request('DELETE', '/api/v1/namespaces/gone');
    t.is(deleted.body.status.phase, 'Terminating');
    const refused = await cp.request('POST', '/api/v1/namespaces/gone/pods', pod('late'));
    t.is(refused.status, 403);
    const deadline = Date.now() + 5000;
    while (
      (await cp.request('GET', '/api/v1/namespaces/gone')).status !== 404 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.is((await cp.request('GET', '/api/v1/namespaces/gone')).status, 404);
    t.deepEqual(
      (await core.listPodForAllNamespaces()).items.map(
        (p) => `${p.metadata!.namespace}/${p.metadata!.name}`,
      ),
      ['kept/p'],
    );
    t.is((await core.listConfigMapForAllNamespaces()).items.length, 0);
    t.is((await np.listNetworkPolicyForAllNamespaces()).items.length, 0);
  },
);

test.serial(
  'status subresource: main writes keep status, status writes keep spec; generation follows spec',
  async (t) => {
    const cp = await startControlPlane(t);
    await ns(cp, 's');
    const created = await cp.request('POST', '/api/v1/namespaces/s/pods', {
      ...pod('p'),
      status: { podIP: '1.2.3.4' },
    });
    t.deepEqual(created.body.status, { phase: 'Pending' });
    const st = await cp.request(
      'PATCH',
      '/api/v1/namespaces/s/pods/p/status',
      {
        status: { phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }] },
        spec: { nodeName: 'ignored' },
      },
      'application/merge-patch+json',
    );
    t.is(st.status, 200);
    t.is(st.body.status.podIP, '10.1.0.5');
    t.is(st.body.spec.nodeName, undefined);
    t.is(st.body.metadata.generation, 1);

    const main = await cp.request(
      'PATCH',
      '/api/v1/namespaces/s/pods/p',
      { spec: { nodeName: 'n1' }, status: { podIP: 'x' } },
      'application/merge-patch+json',
    );
    t.is(main.body.spec.nodeName, 'n1');
    t.is(main.body.status.podIP, '10.1.0.5');
    t.is(main.body.metadata.generation, 2);
    const labelOnly = await cp.request(
      'PATCH',
      '/api/v1/namespaces/s/pods/p',
      { metadata: { labels: { x: 'y' } } },
      'application/merge-patch+json',
    );
    t.is(labelOnly.body.metadata.generation, 2);

    const byNode = await cp.request(
      'GET',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dn1,status.phase%3DRunning',
    );
    t.is(byNode.body.items.length, 1);
    const notRunning = await cp.request(
      'GET',
      '/api/v1/pods?fieldSelector=status.phase!%3DRunning',
    );
    t.is(notRunning.body.items.length, 0);
  },
);

test.serial('limit and continue page through a consistent snapshot', async (t) => {
  const cp = await startControlPlane(t);
  await ns(cp, 'l');
  for (let i = 0; i < 7; i++)
    await cp.request('POST', '/api/v1/namespaces/l/configmaps', { metadata: { name: `cm${i}` } });
  const names: string[] = [];
  let cont = '';
  let rv = '';
  let pages = 0;
  do {
    const r = await cp.request(
      'GET',
      `/api/v1/namespaces/l/configmaps?limit=3${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`,
    );
    names.push(...r.body.items.map((o: { metadata: { name: string } }) => o.metadata.name));
    rv ||= r.body.metadata.resourceVersion;
    t.is(r.body.metadata.resourceVersion, rv);
    cont = r.body.metadata.continue ?? '';
    pages++;
    if (pages === 1)
      await cp.request('POST', '/api/v1/namespaces/l/configmaps', {
        metadata: { name: 'cm9-late' },
      });
  } while (cont && pages < 10);
  t.is(pages, 3);
  t.deepEqual(names, ['cm0', 'cm1', 'cm2', 'cm3', 'cm4', 'cm5', 'cm6']);
});

test.serial(
  'cluster-scoped and custom kinds: CiliumClusterwideNetworkPolicy, CiliumIdentity, Node',
  async (t) => {
    const cp = await startControlPlane(t);
    const custom = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    await custom.createClusterCustomObject({
      group: 'cilium.io',
      version: 'v2',
      plural: 'ciliumidentities',
      body: {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumIdentity',
        metadata: { name: '65537' },
        'security-labels': { 'k8s:app': 'db' },
      },
    });
    const id = (await custom.getClusterCustomObject({
      group: 'cilium.io',
      version: 'v2',
      plural: 'ciliumidentities',
      name: '65537',
    })) as {
      'security-labels': Record<string, string>;
    };
    t.deepEqual(id['security-labels'], { 'k8s:app': 'db' });
    const ccnp = await cp.request('POST', '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies', {
      metadata: { name: 'deny-all', namespace: 'ignored' },
      spec: { endpointSelector: {}, ingress: [{}] },
    });
    t.is(ccnp.status, 201);
    t.is(ccnp.body.metadata.namespace, undefined);
    const noSpec = await cp.request('POST', '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies', {
      metadata: { name: 'empty' },
    });
    t.is(noSpec.status, 422);
    const node = await cp.request('POST', '/api/v1/nodes', {
      metadata: { name: 'c1-n1' },
      spec: { podCIDR: '10.1.1.0/24' },
    });
    t.is(node.status, 201);
    const etcd = cp.etcd.client();
    t.teardown(() => etcd.close());
    t.deepEqual((await etcd.getAll().prefix('/registry/').keys()).sort(), [
      '/registry/ciliumclusterwidenetworkpolicies/deny-all',
      '/registry/ciliumidentities/65537',
      '/registry/nodes/c1-n1',
    ]);
  },
);

test.serial('discovery, version and OpenAPI v3 documents', async (t) => {
  const cp = await startControlPlane(t);
  const version = await cp.request('GET', '/version');
  t.is(version.body.major, '1');
  const apis = await cp.request('GET', '/apis');
  const groups = apis.body.groups.map((g: { name: string }) => g.name).sort();
  t.deepEqual(groups, [
    'cilium.io',
    'coordination.k8s.io',
    'discovery.k8s.io',
    'networking.k8s.io',
  ]);
  const core = await cp.request('GET', '/api/v1');
  const names = core.body.resources.map((r: { name: string }) => r.name);
  for (const n of [
    'namespaces',
    'pods',
    'pods/status',
    'nodes',
    'services',
    'configmaps',
    'secrets',
  ])
    t.true(names.includes(n), n);
  const cilium = await cp.request('GET', '/apis/cilium.io/v2');
  const cnp = cilium.body.resources.find(
    (r: { name: string }) => r.name === 'ciliumnetworkpolicies',
  );
  t.like(cnp, { kind: 'CiliumNetworkPolicy', namespaced: true, shortNames: ['cnp', 'ciliumnp'] });
  t.true(
    cilium.body.resources.some(
      (r: { name: string; namespaced: boolean }) => r.name === 'ciliumidentities' && !r.namespaced,
    ),
  );
  t.is((await cp.request('GET', '/apis/nope.io/v1')).status, 404);

  const root = await cp.request('GET', '/openapi/v3');
  const url = root.body.paths['apis/networking.k8s.io/v1'].serverRelativeURL as string;
  const doc = await cp.request('GET', url);
  const patchOp =
    doc.body.paths['/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{name}']
      .patch;
  t.deepEqual(patchOp['x-kubernetes-group-version-kind'], {
    group: 'networking.k8s.io',
    version: 'v1',
    kind: 'NetworkPolicy',
  });
  t.true(
    patchOp.parameters.some(
      (p: { name: string; in: string }) => p.name === 'fieldValidation' && p.in === 'query',
    ),
  );
});

test.serial(
  'Services get cluster IPs from the service CIDR, claimed atomically and released on delete',
  async (t) => {
    const cp = await startControlPlane(t, { serviceCidr: '10.213.64.0/29' });
    await ns(cp, 'svc');
    const svc = (name: string, spec: Record<string, unknown> = {}) =>
      cp.request('POST', '/api/v1/namespaces/svc/services', {
        metadata: { name },
        spec: { ports: [{ port: 80 }], ...spec },
      });
    const created = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => svc(n)));
    const ips = created.map((r) => r.body.spec.clusterIP as string);
    t.deepEqual([...new Set(created.map((r) => r.status))], [201]);
    t.is(new Set(ips).size, 5, 'concurrent creates never share an IP');
    for (const ip of ips) t.regex(ip, /^10\.213\.64\.[1-6]$/);
    t.deepEqual(created[0]!.body.spec.clusterIPs, [ips[0]]);
    t.like(created[0]!.body.spec.ports[0], { port: 80, protocol: 'TCP', targetPort: 80 });

    const dup = await svc('dup', { clusterIP: ips[0] });
    t.is(dup.status, 422);
    t.regex(dup.body.message, /provided IP is already allocated/);
    const outside = await svc('outside', { clusterIP: '10.0.0.1' });
    t.is(outside.status, 422);
    const headless = await svc('headless', { clusterIP: 'None' });
    t.is(headless.body.spec.clusterIP, 'None');
    const last = await svc('f');
    t.is(last.status, 201);
    const full = await svc('g');
    t.is(full.status, 500);
    t.regex(full.body.message, /range 10.213.64.0\/29 is full/);

    // Updates keep the IP and refuse to change it.
    const upd = await cp.request(
      'PATCH',
      '/api/v1/namespaces/svc/services/a',
      { spec: { selector: { app: 'a' } } },
      'application/merge-patch+json',
    );
    t.is(upd.body.spec.clusterIP, ips[0]);
    const move = await cp.request(
      'PATCH',
      '/api/v1/namespaces/svc/services/a',
      { spec: { clusterIP: '10.213.64.7' } },
      'application/merge-patch+json',
    );
    t.is(move.status, 422);
    t.regex(move.body.message, /field is immutable/);

    await cp.request('DELETE', '/api/v1/namespaces/svc/services/a');
    const reuse = await svc('g', { clusterIP: ips[0] });
    t.is(reuse.status, 201, JSON.stringify(reuse.body));

    // Deleting the namespace releases every claim.
    await cp.request('DELETE', '/api/v1/namespaces/svc');
    const etcd = cp.etcd.client();
    t.teardown(() => etcd.close());
    const deadline = Date.now() + 5000;
    while (
      (await etcd.getAll().prefix('/registry/ipaddresses/').keys()).length > 0 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 50));
    }
    t.deepEqual(await etcd.getAll().prefix('/registry/ipaddresses/').keys(), []);
  },
);

test.serial('paths that do not exist and writes without a namespace are refused', async (t) => {
  const cp = await startControlPlane(t);
  const post = await cp.request('POST', '/api/v1/pods', pod('p'));
  t.is(post.status, 405);
  t.is(post.body.reason, 'MethodNotAllowed');
  const unknown = await cp.request('GET', '/apis/cilium.io/v2/ciliumnodes');
  t.like(unknown.body, { code: 404, reason: 'NotFound' });
  const badSub = await cp.request('GET', '/api/v1/namespaces/x/configmaps/y/status');
  t.is(badSub.status, 404);
});
