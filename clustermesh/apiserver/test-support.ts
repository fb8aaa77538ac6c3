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
import { startEtcd, type RunningEtcd } from '../../integration/etcd/index.ts';
import { setupMeshEtcdAuth, ROOT_USER } from '../etcd-auth.ts';

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
    etcd = await startEtcd({
      name: `${o.prefix}-${randomBytes(3).toString('hex')}`,
      netns: o.netns,
      tls: {
        certFile: file('server.crt'),
        keyFile: file('server.key'),
        trustedCaFile: file('ca.crt'),
        clientCertAuth: true,
      },
      clientTls: {
        caFile: file('ca.crt'),
        certFile: file('root.crt'),
        keyFile: file('root.key'),
        serverName: MESH_ETCD_HOST,
      },
    });
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
