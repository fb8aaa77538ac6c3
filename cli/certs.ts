// `isthmus certs`: the mesh CA, mesh-etcd server certificates, client certificates for etcd users,
// and signed connection bundles. Thin: flags in, certs/ does the work.
import { existsSync, readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import {
  CA_BASENAME,
  CertError,
  createMeshCa,
  DEFAULT_CA_DAYS,
  DEFAULT_LEAF_DAYS,
  issueClientCertificate,
  issueServerCertificate,
  keyPairPaths,
  readKeyPair,
  remoteReaderUser,
  signBundle,
  verifyBundle,
  writeFileAtomic,
  writeKeyPair,
  type KeyPairPem,
} from '../certs/index.ts';

const DEFAULT_CA_DIR = process.env['ISTHMUS_CA_DIR'] ?? './mesh-ca';
const collect = (v: string, prev: string[]) => [...prev, v];

function positiveInt(what: string, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`${what} must be an integer in 1..${max}`);
    return n;
  };
}

/** Expected failures print one line and exit 2 (usage/IO) or 3 (a refused bundle). */
async function run(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    if (!(err instanceof CertError)) throw err;
    process.stderr.write(
      `isthmus certs: ${err.message}${err.cause ? ` (${(err.cause as Error).message})` : ''}\n`,
    );
    process.exitCode = 2;
  }
}

function print(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj, null, 2) + '\n');
}

const readCa = (dir: string): Promise<KeyPairPem> => readKeyPair(dir, CA_BASENAME);

export function register(program: Command): void {
  const certs = program
    .command('certs')
    .description(
      'Certificates for ClusterMesh mTLS: one mesh CA for all clusters; per cluster a server certificate for its mesh etcd; ' +
        'client certificates whose CN is the etcd user (remote-<cluster> for readers, clustermesh-apiserver for the writer); ' +
        'and connection bundles (endpoints + CA + client cert/key, signed by the mesh CA) that other clusters import.',
    );

  certs
    .command('ca')
    .description(
      'Create the mesh CA (ECDSA P-256): DIR/ca.crt and DIR/ca.key (0600). Keep ca.key secret; every cluster trusts ca.crt.',
    )
    .option('--out <dir>', 'directory to write into', DEFAULT_CA_DIR)
    .option('--name <cn>', 'CA common name', 'isthmus-mesh-ca')
    .option('--days <n>', 'validity in days', positiveInt('--days'), DEFAULT_CA_DAYS)
    .option(
      '--force',
      'overwrite an existing CA (invalidates every certificate and bundle it issued)',
    )
    .action((o: { out: string; name: string; days: number; force?: boolean }) =>
      run(async () => {
        if (!o.force && existsSync(keyPairPaths(o.out, CA_BASENAME).keyPath)) {
          throw new CertError(
            'ERR_CERT_EXISTS',
            `${o.out} already holds a CA: use it, or pass --force to replace it`,
          );
        }
        const paths = await writeKeyPair(
          o.out,
          CA_BASENAME,
          await createMeshCa({ commonName: o.name, validity: { days: o.days } }),
        );
        print(paths);
      }),
    );

  certs
    .command('server')
    .description(
      "Issue the server certificate of a cluster's mesh etcd, signed by the mesh CA. Give every address (--ip) and name (--dns) " +
        'that clients dial: TLS refuses a connection to a name not in the certificate. Writes OUT/<cluster>-mesh-etcd.{crt,key}.',
    )
    .requiredOption('--cluster <name>', 'the cluster whose mesh etcd this is')
    .option('--ip <addr>', 'an IP address clients dial (repeatable)', collect, [])
    .option('--dns <name>', 'a DNS name clients dial (repeatable)', collect, [])
    .option('--ca-dir <dir>', 'directory holding ca.crt and ca.key', DEFAULT_CA_DIR)
    .option('--out <dir>', 'directory to write into (default: --ca-dir)')
    .option('--days <n>', 'validity in days', positiveInt('--days'), DEFAULT_LEAF_DAYS)
    .action(
      (o: {
        cluster: string;
        ip: string[];
        dns: string[];
        caDir: string;
        out?: string;
        days: number;
      }) =>
        run(async () => {
          const pair = await issueServerCertificate(await readCa(o.caDir), {
            cluster: o.cluster,
            ips: o.ip,
            dnsNames: o.dns,
            validity: { days: o.days },
          });
          print(await writeKeyPair(o.out ?? o.caDir, `${o.cluster}-mesh-etcd`, pair));
        }),
    );

  certs
    .command('client')
    .description(
      'Issue a client certificate for an etcd user (the certificate CN is the user etcd authenticates). By default the ' +
        'read-only user remote-<cluster> for cluster <cluster> reading other clusters; --user clustermesh-apiserver for the writer. ' +
        'Writes OUT/<cluster>-<user>.{crt,key}.',
    )
    .requiredOption('--cluster <name>', 'the cluster the certificate is for')
    .option('--user <name>', 'etcd user name (default: remote-<cluster>)')
    .option('--ca-dir <dir>', 'directory holding ca.crt and ca.key', DEFAULT_CA_DIR)
    .option('--out <dir>', 'directory to write into (default: --ca-dir)')
    .option('--days <n>', 'validity in days', positiveInt('--days'), DEFAULT_LEAF_DAYS)
    .action((o: { cluster: string; user?: string; caDir: string; out?: string; days: number }) =>
      run(async () => {
        const user = o.user ?? remoteReaderUser(o.cluster);
        const pair = await issueClientCertificate(await readCa(o.caDir), {
          user,
          validity: { days: o.days },
        });
        print(await writeKeyPair(o.out ?? o.caDir, `${o.cluster}-${user}`, pair));
      }),
    );

  certs
    .command('bundle')
    .description(
      'Export the connection bundle of cluster --cluster: its mesh etcd endpoints, the mesh CA, and a fresh client certificate ' +
        'and key for the reading cluster (user remote-<reader>, or --user), signed as a JWS by the mesh CA key. ' +
        'Importers verify the signature against the mesh CA, the expiry, and the certificates. The file holds a private key: ' +
        'it is written 0600; hand it over like a password.',
    )
    .requiredOption('--cluster <name>', 'the cluster whose mesh etcd the bundle connects to')
    .requiredOption('--id <n>', 'that cluster’s ID (1-255)', positiveInt('--id', 255))
    .requiredOption(
      '--endpoints <urls...>',
      'its mesh etcd endpoints, e.g. https://172.18.0.10:2379',
    )
    .requiredOption('--out <file>', 'bundle file to write')
    .option('--reader <cluster>', 'the cluster that will import the bundle (user remote-<reader>)')
    .option(
      '--user <name>',
      'etcd user name of the embedded client certificate (default: remote-<reader>, else "remote")',
    )
    .option('--ca-dir <dir>', 'directory holding ca.crt and ca.key', DEFAULT_CA_DIR)
    .option(
      '--days <n>',
      'validity in days of the bundle and its client certificate',
      positiveInt('--days'),
      DEFAULT_LEAF_DAYS,
    )
    .action(
      (o: {
        cluster: string;
        id: number;
        endpoints: string[];
        out: string;
        reader?: string;
        user?: string;
        caDir: string;
        days: number;
      }) =>
        run(async () => {
          const ca = await readCa(o.caDir);
          const user = o.user ?? (o.reader ? remoteReaderUser(o.reader) : 'remote');
          const client = await issueClientCertificate(ca, { user, validity: { days: o.days } });
          const token = await signBundle(ca, {
            cluster: o.cluster,
            clusterId: o.id,
            endpoints: o.endpoints,
            client,
          });
          await writeFileAtomic(o.out, token + '\n', 0o600);
          print({
            bundle: o.out,
            cluster: o.cluster,
            clusterId: o.id,
            user,
            endpoints: o.endpoints,
          });
        }),
    );

  certs
    .command('verify-bundle')
    .description(
      'Verify a connection bundle against the trusted mesh CA: signature (tampered, or signed by another CA), expiry, ' +
        'structure, and that its client certificate chains to the CA and matches its key. Prints the bundle (without the key); ' +
        'exits 3 when the bundle is refused.',
    )
    .argument('<file>', 'bundle file')
    .option('--ca <file>', 'trusted mesh CA certificate (default: <ca-dir>/ca.crt)')
    .option('--ca-dir <dir>', 'directory holding ca.crt', DEFAULT_CA_DIR)
    .action((file: string, o: { ca?: string; caDir: string }) =>
      run(async () => {
        const caPath = o.ca ?? keyPairPaths(o.caDir, CA_BASENAME).certPath;
        const [token, caPem] = [file, caPath].map((p) => {
          try {
            return readFileSync(p, 'utf8');
          } catch (cause) {
            throw new CertError('ERR_CERT_READ', `cannot read ${p}`, { cause });
          }
        }) as [string, string];
        const r = await verifyBundle(token, caPem);
        if (!r.ok) {
          process.stderr.write(
            `isthmus certs: bundle ${file} refused: ${r.error.code}: ${r.error.detail}\n`,
          );
          process.exitCode = 3;
          return;
        }
        const { keyPem: _key, caPem: _ca, certPem: _cert, ...summary } = r.value;
        print({ ok: true, ...summary });
      }),
    );
}
