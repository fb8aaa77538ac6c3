// The runner's TLS options: server certificate, client-certificate auth, CA — over the unix
// socket and over TCP inside the namespace. Certificates come from openssl here so this test
// does not depend on certs/.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEtcd } from './etcd-runner.ts';
import { createTestNetns } from './test-netns.ts';

function makeCerts(dir: string, ip: string) {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const leaf = (name: string, ext: string) => {
    ssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-subj',
      `/CN=${name}`,
      '-out',
      `${name}.csr`,
    );
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
  };
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-subj',
    '/CN=h4-test-ca',
    '-days',
    '1',
    '-out',
    'ca.crt',
  );
  leaf('server', `subjectAltName=DNS:etcd.lab,IP:${ip}\nextendedKeyUsage=serverAuth\n`);
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  const f = (n: string) => path.join(dir, n);
  return {
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
  };
}

test.serial(
  'a TLS etcd with client-certificate auth serves authenticated clients only',
  async (t) => {
    const ns = createTestNetns('h4etls');
    t.teardown(() => ns.remove());
    const dir = mkdtempSync('/dev/shm/h4etls-certs-');
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const c = makeCerts(dir, ns.address);
    const etcd = await startEtcd({
      name: `h4etls-${randomBytes(3).toString('hex')}`,
      netns: ns.name,
      tcpAddress: `${ns.address}:2379`,
      tls: {
        certFile: c.serverCert,
        keyFile: c.serverKey,
        trustedCaFile: c.ca,
        clientCertAuth: true,
      },
      clientTls: {
        caFile: c.ca,
        certFile: c.clientCert,
        keyFile: c.clientKey,
        serverName: 'etcd.lab',
      },
    });
    t.teardown(() => etcd.stop());
    t.is(etcd.tcpEndpoint, `https://${ns.address}:2379`);

    const client = etcd.client();
    t.teardown(() => client.close());
    await client.put('secure').value('yes');
    t.is(await client.get('secure').string(), 'yes');

    // Without a client certificate the handshake is refused.
    const anonymous = etcd.client({
      credentials: { rootCertificate: readFileSync(c.ca) },
      grpcOptions: { 'grpc.ssl_target_name_override': 'etcd.lab' },
    });
    t.teardown(() => anonymous.close());
    await t.throwsAsync(anonymous.get('secure').string());

    // Over TCP inside the namespace, verified against the IP SAN.
    const out = execFileSync(
      'nsenter',
      [
        `--net=/run/netns/${ns.name}`,
        'etcdctl',
        `--endpoints=${etcd.tcpEndpoint}`,
        `--cacert=${c.ca}`,
        `--cert=${c.clientCert}`,
        `--key=${c.clientKey}`,
        'get',
        'secure',
        '--print-value-only',
      ],
      { env: { ...process.env, ETCDCTL_API: '3' } },
    );
    t.is(out.toString().trim(), 'yes');
  },
);
