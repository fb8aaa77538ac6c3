// Fixtures for the clustermesh privileged tests and the mirror benchmark: a secured mesh etcd
// (TLS, client-certificate auth, users and roles set up by setupMeshEtcdAuth) in a network
// namespace the caller owns, with client certificates of the mesh CA for every role.
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Etcd3 } from 'etcd3';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  remoteReaderUser,
  writeKeyPair,
  WRITER_USER,
  type KeyPairPem,
} from '../../certs/index.ts';
import { startEtcd, type EtcdOptions, type RunningEtcd } from '../../integration/etcd/index.ts';
import type { ExecutionContext } from 'ava';
import { createTestNetns, type TestNetns } from '../../integration/etcd/test-netns.ts';
import { startApiServer } from '../../integration/apiserver/server.ts';
import { UnixSocketKubeConfig } from '../../integration/apiserver/client.ts';
import { rawRequest } from '../../integration/apiserver/test-support.ts';
import { KubeClient } from '../../agent/k8s/index.ts';
import { setupMeshEtcdAuth, ROOT_USER } from '../etcd-auth.ts';
import { EtcdMeshKv } from './etcd-kv.ts';
import { ClusterMeshApiServer } from './server.ts';
import type { LocalCluster } from './records.ts';
import type { MeshWriterOptions } from './types.ts';

/** The DNS SAN of the test mesh etcd's certificate; clients verify it over the unix socket. */
export const MESH_ETCD_HOST = 'mesh-etcd.isthmus.test';

export interface MeshEtcd {
  etcd: RunningEtcd;
  certDir: string;
  /** A client authenticated with `<name>.crt/.key` from certDir (caller closes it). */
  clientAs(name: string): Etcd3;
  /** Issues a client certificate for etcd user `user` (from another CA if `foreign`). */
  issue(name: string, user: string, opts?: { foreign?: boolean }): Promise<void>;
  stop(): Promise<void>;
}

/** A mesh etcd serving `server.crt`, requiring client certificates of `ca.crt` (in certDir),
 * and the root client the tests set it up with. */
export function securedEtcdOptions(certDir: string, name: string, netns: string): EtcdOptions {
  const file = (n: string) => path.join(certDir, n);
  return {
    name,
    netns,
    tls: {
      certFile: file('server.crt'),
      keyFile: file('server.key'),
      trustedCaFile: file('ca.crt'),
      clientCertAuth: true,
    },
    clientTls: {
      caFile: file('ca.crt'),
      certFile: file(`${ROOT_USER}.crt`),
      keyFile: file(`${ROOT_USER}.key`),
      serverName: MESH_ETCD_HOST,
    },
  };
}

/** Starts a secured mesh etcd; certificates `root`, the writer and `remote-<readers>` exist. */
export async function startMeshEtcd(o: {
  prefix: string;
  netns: string;
  cluster: string;
  readers?: string[];
}): Promise<MeshEtcd> {
  const certDir = await mkdtemp(path.join('/dev/shm', `${o.prefix}-certs-`));
  const ca = await createMeshCa();
  await writeKeyPair(certDir, 'ca', ca);
  await writeKeyPair(
    certDir,
    'server',
    await issueServerCertificate(ca, { cluster: o.cluster, dnsNames: [MESH_ETCD_HOST] }),
  );
  const issue = async (name: string, user: string, opts: { foreign?: boolean } = {}) => {
    const signer: KeyPairPem = opts.foreign ? await createMeshCa() : ca;
    await writeKeyPair(certDir, name, await issueClientCertificate(signer, { user }));
  };
  await issue(ROOT_USER, ROOT_USER);
  await issue(WRITER_USER, WRITER_USER);
  for (const r of o.readers ?? []) await issue(remoteReaderUser(r), remoteReaderUser(r));
  const file = (n: string) => path.join(certDir, n);
  let etcd: RunningEtcd;
  try {
    etcd = await startEtcd(
      securedEtcdOptions(certDir, `${o.prefix}-${randomBytes(3).toString('hex')}`, o.netns),
    );
  } catch (err) {
    await rm(certDir, { recursive: true, force: true });
    throw err;
  }
  const clientAs = (name: string) =>
    etcd.client({
      credentials: {
        rootCertificate: readFileSync(file('ca.crt')),
        certChain: readFileSync(file(`${name}.crt`)),
        privateKey: readFileSync(file(`${name}.key`)),
      },
      grpcOptions: { 'grpc.ssl_target_name_override': MESH_ETCD_HOST },
    });
  const stop = async () => {
    await etcd.stop();
    await rm(certDir, { recursive: true, force: true });
  };
  const root = clientAs(ROOT_USER);
  try {
    await setupMeshEtcdAuth(root);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    root.close();
  }
  return { etcd, certDir, clientAs, issue, stop };
}

export interface MirrorFixture {
  ns: TestNetns;
  mesh: MeshEtcd;
  api: KubeClient;
  kubeSocket: string;
  /** A root client on the mesh etcd for assertions. */
  meshRoot: Etcd3;
  /** A new clustermesh API server writing as the writer user (stopped at teardown). */
  startServer(opts?: { writer?: MeshWriterOptions }): Promise<ClusterMeshApiServer>;
  /** Merge-patches an object's status subresource (Node status is ignored on create). */
  patchStatus(path: string, status: unknown): Promise<void>;
}

/** A test namespace with the cluster's Kubernetes API (etcd + API server) and its mesh etcd. */
export async function startMirrorFixture(
  t: ExecutionContext,
  prefix: string,
  cluster: LocalCluster,
): Promise<MirrorFixture> {
  const ns = createTestNetns(prefix);
  t.teardown(() => ns.remove());
  const kubeEtcd = await startEtcd({
    name: `${prefix}-k-${randomBytes(3).toString('hex')}`,
    netns: ns.name,
  });
  t.teardown(() => kubeEtcd.stop());
  const kubeEtcdClient = kubeEtcd.client();
  t.teardown(() => kubeEtcdClient.close());
  const kubeSocket = path.join(kubeEtcd.baseDir, 'apiserver.sock');
  const apiServer = await startApiServer({
    etcd: kubeEtcdClient,
    socketPath: kubeSocket,
    serviceCidr: '10.213.200.0/24',
  });
  t.teardown(() => apiServer.stop());
  const kubeConfig = new UnixSocketKubeConfig(kubeSocket);
  t.teardown(() => kubeConfig.close());
  const mesh = await startMeshEtcd({
    prefix: `${prefix}-m`,
    netns: ns.name,
    cluster: cluster.name,
  });
  t.teardown(() => mesh.stop());
  const meshRoot = mesh.clientAs(ROOT_USER);
  t.teardown(() => meshRoot.close());
  const api = new KubeClient(kubeConfig);
  return {
    ns,
    mesh,
    api,
    kubeSocket,
    meshRoot,
    async startServer(opts = {}) {
      const writerClient = mesh.clientAs(WRITER_USER);
      const server = new ClusterMeshApiServer({
        cluster,
        kube: new KubeClient(kubeConfig),
        kv: new EtcdMeshKv(writerClient),
        ...(opts.writer ? { writer: opts.writer } : {}),
      });
      t.teardown(async () => {
        await server.stop();
        writerClient.close();
      });
      await server.start();
      return server;
    },
    async patchStatus(urlPath, status) {
      const res = await rawRequest(
        kubeSocket,
        'PATCH',
        `${urlPath}/status`,
        { status },
        'application/merge-patch+json',
      );
      if (res.status >= 300)
        throw new Error(`PATCH ${urlPath}/status: ${res.status} ${JSON.stringify(res.body)}`);
    },
  };
}
