// The mesh certificates against a real etcd 3.4 with client-certificate authentication, over UNIX
// sockets only (etcd names a unix socket after the URL's host:port, in its working directory).
// etcd maps the client certificate's CN to its user: the reader `remote-c2` may only read
// `cilium/`, the writer `clustermesh-apiserver` writes; other CAs and expired certificates fail.
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeKeyPair } from './files.ts';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  remoteReaderUser,
  WRITER_USER,
} from './issue.ts';
import type { KeyPairPem } from './keys.ts';

const HOST = 'mesh-etcd';
const ENDPOINT = `unixs://${HOST}:0`;

interface Etcd {
  dir: string;
  ctl(cert: string, ...args: string[]): Promise<{ code: number; out: string }>;
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { cwd, timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } },
      (err, stdout, stderr) => {
        resolve({
          code: err ? ((err as { code?: number }).code ?? 1) : 0,
          out: `${stdout}${stderr}`,
        });
      },
    );
  });
}

async function startEtcd(t: import('ava').ExecutionContext): Promise<Etcd> {
  const dir = await mkdtemp(join(tmpdir(), 'isthmus-h5-etcd-'));
  const ca = await createMeshCa();
  const certs: Record<string, KeyPairPem> = {
    server: await issueServerCertificate(ca, { cluster: 'c1', dnsNames: [HOST] }),
    root: await issueClientCertificate(ca, { user: 'root' }),
    reader: await issueClientCertificate(ca, { user: remoteReaderUser('c2') }),
    writer: await issueClientCertificate(ca, { user: WRITER_USER }),
    foreign: await issueClientCertificate(await createMeshCa(), { user: remoteReaderUser('c2') }),
    expired: await issueClientCertificate(ca, {
      user: remoteReaderUser('c2'),
      validity: {
        notBefore: new Date(Date.now() - 2 * 86400_000),
        notAfter: new Date(Date.now() - 86400_000),
      },
    }),
  };
  await writeKeyPair(dir, 'ca', ca);
  for (const [name, pair] of Object.entries(certs)) await writeKeyPair(dir, name, pair);
  // prettier-ignore
  const args = [
    '--name', 'h5', '--data-dir', join(dir, 'data'), '--log-level', 'warn',
    '--listen-client-urls', ENDPOINT, '--advertise-client-urls', ENDPOINT,
    '--listen-peer-urls', 'unix://peer.sock:0', '--initial-advertise-peer-urls', 'unix://peer.sock:0',
    '--initial-cluster', 'h5=unix://peer.sock:0',
    '--cert-file', 'server.crt', '--key-file', 'server.key', '--trusted-ca-file', 'ca.crt', '--client-cert-auth',
  ];
  const etcd: ChildProcess = spawn('etcd', args, { cwd: dir, stdio: 'ignore' });
  t.teardown(async () => {
    if (etcd.exitCode === null) {
      const exited = new Promise((resolve) => etcd.once('exit', resolve));
      etcd.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  const ctl = (cert: string, ...rest: string[]) =>
    run(
      'etcdctl',
      [
        '--endpoints',
        ENDPOINT,
        '--cacert',
        'ca.crt',
        '--cert',
        `${cert}.crt`,
        '--key',
        `${cert}.key`,
        '--dial-timeout=3s',
        '--command-timeout=5s',
        ...rest,
      ],
      dir,
    );
  for (let i = 0; i < 100; i++) {
    if (etcd.exitCode !== null) throw new Error(`etcd exited with ${etcd.exitCode}`);
    if (existsSync(join(dir, `${HOST}:0`)) && (await ctl('root', 'endpoint', 'health')).code === 0)
      return { dir, ctl };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('etcd did not become healthy within 10 s');
}

async function must(
  t: import('ava').ExecutionContext,
  p: Promise<{ code: number; out: string }>,
): Promise<string> {
  const r = await p;
  t.is(r.code, 0, r.out);
  return r.out;
}

test.serial(
  'etcd authenticates mesh client certificates by CN: reader reads cilium/ only, writer writes, others refused',
  async (t) => {
    const { ctl } = await startEtcd(t);
    const pw = () => `--new-user-password=${randomBytes(12).toString('hex')}`;
    for (const cmd of [
      ['user', 'add', 'root', pw()],
      ['user', 'add', remoteReaderUser('c2'), pw()],
      ['user', 'add', WRITER_USER, pw()],
      ['role', 'add', 'mesh-read'],
      ['role', 'grant-permission', 'mesh-read', '--prefix=true', 'read', 'cilium/'],
      ['role', 'add', 'mesh-write'],
      ['role', 'grant-permission', 'mesh-write', '--prefix=true', 'readwrite', 'cilium/'],
      ['user', 'grant-role', remoteReaderUser('c2'), 'mesh-read'],
      ['user', 'grant-role', WRITER_USER, 'mesh-write'],
      ['auth', 'enable'],
    ]) {
      await must(t, ctl('root', ...cmd));
    }
    await must(t, ctl('writer', 'put', 'cilium/state/nodes/v1/c1/n1', '{"Name":"n1"}'));
    t.regex(
      await must(t, ctl('reader', 'get', '--prefix', 'cilium/')),
      /cilium\/state\/nodes\/v1\/c1\/n1\n\{"Name":"n1"\}/,
    );

    const write = await ctl('reader', 'put', 'cilium/state/nodes/v1/c1/evil', '{}');
    t.not(write.code, 0);
    t.regex(write.out, /permission denied/);
    const outside = await ctl('reader', 'get', '/registry/secrets/x');
    t.regex(outside.out, /permission denied/);

    for (const cert of ['foreign', 'expired']) {
      // the TLS handshake fails, so etcdctl only sees no usable connection until its timeout
      const r = await ctl(cert, 'get', 'cilium/state/nodes/v1/c1/n1', '--command-timeout=2s');
      t.not(r.code, 0, `${cert}: ${r.out}`);
      t.notRegex(r.out, /\{"Name":"n1"\}/);
      t.regex(r.out, /TransientFailure|deadline exceeded|certificate/);
    }
  },
);
