// Unit tests of the real-cluster access's error cases (fake Kubernetes side, no etcd needed except
// the unreachable case, which dials a unix socket path that does not exist) and of the pair checks.
import 'reflect-metadata';
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMeshCa, issueClientCertificate, type KeyPairPem } from '../../certs/index.ts';
import { connectClusters, disconnectClusters, type ClusterAccess } from './connect.ts';
import { MESH_ADMIN_SECRET, MESH_CA_SECRET, MESH_CONFIG, type MeshKubeApi } from './install.ts';
import {
  kubeClusterAccess,
  kubeSecretStore,
  loadContext,
  type KubeAccessError,
} from './kube-access.ts';

class FakeKube implements MeshKubeApi {
  secrets = new Map<string, Record<string, string>>();
  configMaps = new Map<string, Record<string, string>>();
  async readSecret(n: string) {
    return this.secrets.get(n);
  }
  async writeSecret(n: string, d: Record<string, string>) {
    this.secrets.set(n, { ...d });
  }
  async deleteSecret(n: string) {
    return this.secrets.delete(n);
  }
  async readConfigMap(n: string) {
    return this.configMaps.get(n);
  }
  async writeConfigMap(n: string, d: Record<string, string>) {
    this.configMaps.set(n, { ...d });
  }
}

let ca: KeyPairPem;
let admin: KeyPairPem;
test.before(async () => {
  ca = await createMeshCa();
  admin = await issueClientCertificate(ca, { user: 'root' });
});

function installed(config: Record<string, string> = {}): FakeKube {
  const k = new FakeKube();
  k.configMaps.set(MESH_CONFIG.name, {
    'cluster-name': 'c1',
    'cluster-id': '1',
    endpoints: 'https://192.0.2.1:2379',
    ...config,
  });
  k.secrets.set(MESH_CA_SECRET.name, { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem });
  k.secrets.set(MESH_ADMIN_SECRET.name, {
    'ca.crt': ca.certPem,
    'tls.crt': admin.certPem,
    'tls.key': admin.keyPem,
  });
  return k;
}

const access = (api: MeshKubeApi) =>
  kubeClusterAccess('unused', 'ctx1', { api, dialTimeoutMs: 500 });

test('a context that is not in the kubeconfig is named with the ones that are', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'h23-kc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters: [{name: k, cluster: {server: "https://192.0.2.9:6443"}}]
users: [{name: u, user: {}}]
contexts: [{name: east, context: {cluster: k, user: u}}, {name: west, context: {cluster: k, user: u}}]
current-context: east
`,
  );
  t.is(loadContext(file).context, 'east');
  t.is(loadContext(file, 'west').kc.getCurrentContext(), 'west');
  const err = t.throws(() => loadContext(file, 'north')) as KubeAccessError;
  t.is(err.code, 'ERR_KUBE_CONTEXT');
  t.regex(err.message, /context north not found in .*config; it has: east, west/);
  const missing = t.throws(() => loadContext(join(dir, 'nope'))) as KubeAccessError;
  t.is(missing.code, 'ERR_KUBE_CONTEXT');
});

test('no install objects: asks whether Isthmus is installed with clustermesh in that context', async (t) => {
  const err = (await t.throwsAsync(access(new FakeKube()))) as KubeAccessError;
  t.is(err.code, 'ERR_MESH_NOT_INSTALLED');
  t.regex(err.message, /ConfigMap kube-system\/isthmus-clustermesh not found in context ctx1/);
  t.regex(err.message, /is Isthmus installed with clustermesh enabled in context ctx1\?/);
  const k = installed();
  k.secrets.delete(MESH_ADMIN_SECRET.name);
  const noAdmin = (await t.throwsAsync(access(k))) as KubeAccessError;
  t.is(noAdmin.code, 'ERR_MESH_NOT_INSTALLED');
  t.regex(noAdmin.message, /Secret kube-system\/clustermesh-apiserver-admin-cert not found/);
});

test('invalid install values are refused, naming the key', async (t) => {
  for (const [config, re] of [
    [{ 'cluster-id': '0' }, /cluster-id "0" is not in 1\.\.255/],
    [{ 'cluster-name': 'C_1' }, /cluster-name "C_1" is not a valid cluster name/],
    [{ endpoints: 'http://x:1' }, /endpoints must list https:\/\/host:port URLs/],
  ] as const) {
    const err = (await t.throwsAsync(access(installed(config)))) as KubeAccessError;
    t.is(err.code, 'ERR_MESH_INSTALL_INVALID');
    t.regex(err.message, re);
  }
  const k = installed();
  k.secrets.set(MESH_CA_SECRET.name, { 'ca.crt': ca.certPem });
  const noKey = (await t.throwsAsync(access(k))) as KubeAccessError;
  t.regex(noKey.message, /Secret kube-system\/cilium-ca in context ctx1 lacks ca\.key/);
});

test('a mesh etcd that does not answer is reported with its address', async (t) => {
  const sock = join(tmpdir(), `h23-none-${process.pid}.sock`);
  const err = (await t.throwsAsync(
    access(installed({ 'admin-endpoint': `unix://${sock}` })),
  )) as KubeAccessError;
  t.is(err.code, 'ERR_MESH_ENDPOINT_UNREACHABLE');
  t.regex(
    err.message,
    new RegExp(`mesh etcd of c1 \\(context ctx1\\) at unix://${sock} did not answer`),
  );
});

test('the clustermesh Secret store: an empty map deletes the Secret', async (t) => {
  const k = new FakeKube();
  const store = kubeSecretStore(k);
  t.is(await store.get(), undefined);
  await store.put({ c2: 'bundle' });
  t.deepEqual(await store.get(), { c2: 'bundle' });
  await store.put({});
  t.false(k.secrets.has('cilium-clustermesh'));
});

function fakeAccess(name: string, id: number, caPair: KeyPairPem): ClusterAccess {
  return {
    name,
    id,
    endpoints: ['https://192.0.2.1:2379'],
    origin: `context ${name}-ctx`,
    root: () => {
      throw new Error('must not touch etcd');
    },
    close: () => {},
    secret: kubeSecretStore(new FakeKube()),
    ca: caPair,
  };
}

test('connect and disconnect refuse the same cluster twice, a shared cluster ID, two CAs', async (t) => {
  const other = await createMeshCa();
  const cases = [
    [fakeAccess('c1', 1, ca), fakeAccess('c1', 1, ca), 'ERR_MESH_SAME_CLUSTER', /same cluster c1/],
    [
      fakeAccess('c1', 3, ca),
      fakeAccess('c2', 3, ca),
      'ERR_MESH_SAME_CLUSTER_ID',
      /both have cluster ID 3/,
    ],
    [
      fakeAccess('c1', 1, ca),
      fakeAccess('c2', 2, other),
      'ERR_MESH_CA_MISMATCH',
      /different mesh CAs/,
    ],
  ] as const;
  for (const [a, b, code, re] of cases)
    for (const op of [connectClusters, disconnectClusters]) {
      const err = (await t.throwsAsync(op(a, b))) as Error & { code: string };
      t.is(err.code, code);
      t.regex(err.message, re);
    }
});
