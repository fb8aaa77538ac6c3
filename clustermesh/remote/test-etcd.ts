// A real mesh etcd for this folder's privileged tests: etcd 3.4 in a test network namespace,
// reached only through its TLS unix socket, client-certificate auth, and etcd users as the mesh
// uses them (`root` writes; the reader `remote-c1` may only read `cilium/`). Its data directory
// outlives a restart, so tests can take it down and bring it back.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Range, type Etcd3 } from 'etcd3';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  signBundle,
  verifyBundle,
  writeKeyPair,
  type ConnectionBundle,
  type KeyPairPem,
} from '../../certs/index.ts';
import { startEtcd, type RunningEtcd } from '../../integration/etcd/index.ts';
import { createTestNetns, type TestNetns } from '../../integration/etcd/test-netns.ts';
import { unixServerName } from './etcd-source.ts';

export const READER = 'remote-c1';

export interface MeshEtcd {
  ca: KeyPairPem;
  /** the test namespace, and the etcd's https://ip:2379 endpoint inside it */
  netns: string;
  tcpEndpoint: string;
  /** the mesh CA certificate file */
  caFile: string;
  /** the reader's client certificate */
  reader: KeyPairPem;
  /** writes as root (the test plays the remote's clustermesh API server) */
  writer(): Etcd3;
  /** a verified bundle for cluster `cluster` pointing at this etcd, for a fresh reader cert */
  bundle(client?: KeyPairPem): Promise<ConnectionBundle>;
  /** the signed bundle text (default endpoint: the unix socket) */
  bundleText(client?: KeyPairPem, endpoints?: string[]): Promise<string>;
  /** etcd down for the reader; `during` runs against the same data on a socket the reader does not know */
  outage(during: (writer: Etcd3) => Promise<void>, minMs: number): Promise<void>;
  /** the running etcd's PID (tests freeze it with SIGSTOP to play a hung remote) */
  pid(): number;
  close(): Promise<void>;
}

/** `opts.ca`: issue from this mesh CA (e.g. a lab's, so its agents trust the bundle); default a new one. */
export async function startMeshEtcd(
  cluster: string,
  clusterId: number,
  opts: { ca?: KeyPairPem } = {},
): Promise<MeshEtcd> {
  const tag = `h11rc-${randomBytes(3).toString('hex')}`;
  const ns: TestNetns = createTestNetns('h11rc');
  const root = join('/dev/shm', tag);
  const cleanup: (() => Promise<void> | void)[] = [
    () => ns.remove(),
    () => rm(root, { recursive: true, force: true }),
  ];
  try {
    await mkdir(join(root, 'data'), { recursive: true, mode: 0o700 });
    const ca = opts.ca ?? (await createMeshCa());
    const server = await issueServerCertificate(ca, {
      cluster,
      dnsNames: [unixServerName(cluster)],
      ips: [ns.address],
    });
    const admin = await issueClientCertificate(ca, { user: 'root' });
    const reader = await issueClientCertificate(ca, { user: READER });
    const certs = join(root, 'certs');
    await mkdir(certs);
    await writeKeyPair(certs, 'ca', ca);
    await writeKeyPair(certs, 'server', server);
    await writeKeyPair(certs, 'root', admin);
    const start = (baseDir: string) =>
      startEtcd({
        name: tag,
        netns: ns.name,
        baseDir,
        tcpAddress: `${ns.address}:2379`,
        tls: {
          certFile: join(certs, 'server.crt'),
          keyFile: join(certs, 'server.key'),
          trustedCaFile: join(certs, 'ca.crt'),
          clientCertAuth: true,
        },
        clientTls: {
          caFile: join(certs, 'ca.crt'),
          certFile: join(certs, 'root.crt'),
          keyFile: join(certs, 'root.key'),
          serverName: unixServerName(cluster),
        },
        // a data dir apart from baseDir (which stop() removes), so a restart keeps the data
        extraArgs: [`--data-dir=${join(root, 'data')}`],
      });
    const liveDir = join(root, 'live');
    let etcd: RunningEtcd = await start(liveDir);
    cleanup.push(() => etcd.stop());
    await enableReaderAuth(etcd.client());
    const endpoint = `unixs://${etcd.socketPath}`;
    const bundleText = async (client: KeyPairPem = reader, endpoints = [endpoint]) =>
      signBundle(ca, { cluster, clusterId, endpoints, client });
    return {
      ca,
      netns: ns.name,
      tcpEndpoint: `https://${ns.address}:2379`,
      caFile: join(certs, 'ca.crt'),
      reader,
      writer: () => etcd.client(),
      bundleText,
      async bundle(client = reader) {
        const r = await verifyBundle(await bundleText(client), ca.certPem);
        if (!r.ok) throw new Error(`test bundle refused: ${r.error.detail}`);
        return r.value;
      },
      async outage(during, minMs) {
        const began = Date.now();
        await etcd.stop();
        const side = await start(join(root, 'side'));
        const w = side.client();
        try {
          await during(w);
        } finally {
          w.close();
          await side.stop();
        }
        await new Promise((r) => setTimeout(r, Math.max(0, minMs - (Date.now() - began))));
        etcd = await start(liveDir);
      },
      pid: () => etcd.pid,
      async close() {
        for (const c of cleanup.reverse()) await c();
      },
    };
  } catch (err) {
    for (const c of cleanup.reverse()) await c();
    throw err;
  }
}

/** etcd users as in the mesh: the reader can only read `cilium/`. */
async function enableReaderAuth(admin: Etcd3): Promise<void> {
  try {
    const pw = () => randomBytes(12).toString('hex');
    await admin.user('root').create(pw());
    await admin.user('root').addRole('root');
    await admin.role('mesh-read').create();
    await admin.role('mesh-read').grant({ permission: 'Read', range: Range.prefix('cilium/') });
    await admin.user(READER).create(pw());
    await admin.user(READER).addRole('mesh-read');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
}
