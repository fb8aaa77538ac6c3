// The machine's kubectl (1.32), run inside the test's namespace against the server's TCP
// address, with no extra flags: apply twice, get (tables), label, patch, delete, get -o json.
import test from 'ava';
import { startKubectlControlPlane } from './test-support.ts';

const MANIFEST = `
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: payments}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  containers:
  - name: web
    image: nginx
    ports:
    - {containerPort: 80, name: http}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
  ingress:
  - ports:
    - port: 80
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web-from-client
  namespace: shop
spec:
  endpointSelector:
    matchLabels: {app: web}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: client}
`;

test.serial('kubectl apply, get, label, patch, delete round trip', async (t) => {
  const cp = await startKubectlControlPlane(t);
  const ok = async (args: string[], stdin?: string) => {
    const r = await cp.kubectl(args, stdin);
    t.is(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };

  const first = await ok(['apply', '-f', '-'], MANIFEST);
  t.regex(first, /namespace\/shop created/);
  t.regex(first, /pod\/web created/);
  t.regex(first, /networkpolicy.networking.k8s.io\/allow-web created/);
  t.regex(first, /ciliumnetworkpolicy.cilium.io\/web-from-client created/);
  const second = await ok(['apply', '-f', '-'], MANIFEST);
  t.is(second.match(/unchanged/g)?.length, 5, second);

  // Tables: kubectl prints the server's columns.
  const pods = await ok(['get', 'pods', '-n', 'shop']);
  t.regex(pods, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\n/);
  t.regex(pods, /web\s+0\/1\s+Pending\s+0\s+\d+s/);
  t.regex(await ok(['get', 'ns']), /shop\s+Active/);
  t.regex(await ok(['get', 'netpol', '-n', 'shop']), /allow-web\s+app=web/);
  t.regex(
    await ok(['get', 'svc', '-n', 'shop']),
    /web\s+ClusterIP\s+10\.213\.128\.\d+\s+<none>\s+80\/TCP/,
  );
  t.regex(await ok(['get', 'cnp', '-A']), /shop\s+web-from-client/);

  // label on each kind, then select by it.
  await ok(['label', 'pod', 'web', '-n', 'shop', 'tier=front']);
  await ok(['label', 'ns', 'shop', 'env=dev']);
  await ok(['label', 'netpol', 'allow-web', '-n', 'shop', 'owner=sec']);
  await ok(['label', 'cnp', 'web-from-client', '-n', 'shop', 'owner=sec']);
  t.regex(await ok(['get', 'pods', '-A', '-l', 'tier=front']), /web/);
  t.regex(await ok(['get', 'ns', '-l', 'env in (dev,prod)']), /shop/);
  t.regex(
    await ok(['get', 'netpol,cnp', '-n', 'shop', '-l', 'owner=sec', '-o', 'name']),
    /allow-web[\s\S]*web-from-client/,
  );

  // patch: strategic (merge key containerPort), merge, json.
  await ok([
    'patch',
    'pod',
    'web',
    '-n',
    'shop',
    '-p',
    '{"spec":{"containers":[{"name":"web","ports":[{"containerPort":8080,"name":"alt"}]}]}}',
  ]);
  const pod = JSON.parse(await ok(['get', 'pod', 'web', '-n', 'shop', '-o', 'json']));
  t.deepEqual(pod.spec.containers[0].ports, [
    { containerPort: 80, name: 'http', protocol: 'TCP' },
    { containerPort: 8080, name: 'alt', protocol: 'TCP' },
  ]);
  t.deepEqual(pod.metadata.labels, { app: 'web', tier: 'front' });
  await ok([
    'patch',
    'cnp',
    'web-from-client',
    '-n',
    'shop',
    '--type=merge',
    '-p',
    '{"spec":{"endpointSelector":{"matchLabels":{"app":"api"}}}}',
  ]);
  await ok([
    'patch',
    'netpol',
    'allow-web',
    '-n',
    'shop',
    '--type=json',
    '-p',
    '[{"op":"replace","path":"/spec/podSelector/matchLabels/app","value":"api"}]',
  ]);
  await ok(['patch', 'ns', 'shop', '-p', '{"metadata":{"annotations":{"note":"x"}}}']);
  const cnp = JSON.parse(await ok(['get', 'cnp', 'web-from-client', '-n', 'shop', '-o', 'json']));
  t.deepEqual(cnp.spec.endpointSelector, { matchLabels: { app: 'api' } });
  const np = JSON.parse(await ok(['get', 'netpol', 'allow-web', '-n', 'shop', '-o', 'json']));
  t.deepEqual(np.spec.podSelector, { matchLabels: { app: 'api' } });
  t.deepEqual(np.spec.policyTypes, ['Ingress'], 'defaulted by the server');
  t.is(JSON.parse(await ok(['get', 'ns', 'shop', '-o', 'json'])).metadata.annotations.note, 'x');

  // Re-applying the manifest restores the applied fields (a three-way patch, not "unchanged").
  const third = await ok(['apply', '-f', '-'], MANIFEST);
  t.regex(third, /networkpolicy.networking.k8s.io\/allow-web configured/);
  t.regex(third, /ciliumnetworkpolicy.cilium.io\/web-from-client configured/);
  const restored = JSON.parse(await ok(['get', 'netpol', 'allow-web', '-n', 'shop', '-o', 'json']));
  t.deepEqual(restored.spec.podSelector, { matchLabels: { app: 'web' } });

  // delete: single objects, then the namespace with the rest of its content.
  t.regex(await ok(['delete', 'pod', 'web', '-n', 'shop']), /pod "web" deleted/);
  const missing = await cp.kubectl(['get', 'pod', 'web', '-n', 'shop']);
  t.not(missing.code, 0);
  t.regex(missing.stderr, /\(NotFound\): pods "web" not found/);
  const all = await ok(['delete', '-f', '-', '--ignore-not-found'], MANIFEST);
  t.regex(all, /namespace "shop" deleted/);
  t.regex(all, /ciliumnetworkpolicy.cilium.io "web-from-client" deleted/);
  t.regex(
    (await cp.kubectl(['get', 'ns'])).stderr + (await cp.kubectl(['get', 'ns'])).stdout,
    /No resources found/,
  );
});

test.serial('kubectl reports the server-side errors users need to act on', async (t) => {
  const cp = await startKubectlControlPlane(t);
  const badName = await cp.kubectl(
    ['apply', '-f', '-'],
    'apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n',
  );
  t.not(badName.code, 0);
  t.regex(badName.stderr, /is invalid: metadata.name: Invalid value: "Bad_Name"/);
  const noNs = await cp.kubectl(
    ['apply', '-f', '-'],
    'apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ghost}\nspec: {containers: [{name: c, image: x}]}\n',
  );
  t.not(noNs.code, 0);
  t.regex(noNs.stderr, /namespaces "ghost" not found/);
  const unknown = await cp.kubectl(['get', 'deployments']);
  t.not(unknown.code, 0);
  t.regex(unknown.stderr, /the server doesn't have a resource type "deployments"/);
});

test.serial(
  'kubectl create (typed clients sending protobuf) for namespaces, configmaps, secrets, services',
  async (t) => {
    const cp = await startKubectlControlPlane(t);
    const ok = async (args: string[]) => {
      const r = await cp.kubectl(args);
      t.is(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
      return r.stdout;
    };
    t.regex(await ok(['create', 'namespace', 'made']), /namespace\/made created/);
    await ok(['create', 'configmap', 'cfg', '-n', 'made', '--from-literal=color=blue']);
    await ok([
      'create',
      'secret',
      'generic',
      'pw',
      '-n',
      'made',
      '--from-literal=password=hunter2',
    ]);
    await ok(['create', 'service', 'clusterip', 'web', '-n', 'made', '--tcp=80:http']);
    const cm = JSON.parse(await ok(['get', 'cm', 'cfg', '-n', 'made', '-o', 'json']));
    t.deepEqual(cm.data, { color: 'blue' });
    const secret = JSON.parse(await ok(['get', 'secret', 'pw', '-n', 'made', '-o', 'json']));
    t.is(Buffer.from(secret.data.password, 'base64').toString(), 'hunter2');
    const svc = JSON.parse(await ok(['get', 'svc', 'web', '-n', 'made', '-o', 'json']));
    t.like(svc.spec.ports[0], { name: '80-http', port: 80, protocol: 'TCP', targetPort: 'http' });
    t.deepEqual(svc.spec.selector, { app: 'web' });
    t.regex(svc.spec.clusterIP, /^10\.213\.128\./);
    const dup = await cp.kubectl(['create', 'namespace', 'made']);
    t.regex(dup.stderr, /AlreadyExists.*namespaces "made" already exists/);
  },
);
