// The mesh CA and the certificates it issues for clustermesh mTLS: a server certificate per
// cluster's mesh etcd (SANs = the addresses and names clients dial), client certificates whose CN
// is the etcd user name (etcd maps the client certificate's CN to its user), e.g. `remote-c2`.
import { isIP } from 'node:net';
import {
  CertError,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  parseCertificatePem,
  randomSerial,
  SIGNING_ALGORITHM,
  x509,
  type KeyPairPem,
} from './keys.ts';

const DAY_MS = 24 * 3600 * 1000;
/** Backdating notBefore tolerates clock skew between the issuing and the verifying machine. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

export const DEFAULT_CA_DAYS = 3650;
export const DEFAULT_LEAF_DAYS = 365;

/** Validity: `days` from now, or an explicit window (tests make expired certificates with it). */
export interface Validity {
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
}

function window(v: Validity | undefined, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  const notBefore = v?.notBefore ?? new Date(now - CLOCK_SKEW_MS);
  const days = v?.days ?? defaultDays;
  if (!(days > 0))
    throw new CertError(
      'ERR_CERT_VALIDITY',
      `validity must be a positive number of days, got ${days}`,
    );
  const notAfter = v?.notAfter ?? new Date(now + days * DAY_MS);
  if (notAfter <= notBefore)
    throw new CertError('ERR_CERT_VALIDITY', 'notAfter must be later than notBefore');
  return { notBefore, notAfter };
}

function dn(commonName: string, org = 'isthmus'): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(commonName)) {
    throw new CertError(
      'ERR_CERT_NAME',
      `common name ${JSON.stringify(commonName)} must be 1-64 of letters, digits, '.', '_' or '-'`,
    );
  }
  return `CN=${commonName}, O=${org}`;
}

/** A mesh CA: self-signed, CA:true with pathLen 0, may only sign certificates and CRLs. */
export async function createMeshCa(
  opts: { commonName?: string; validity?: Validity } = {},
): Promise<KeyPairPem> {
  const keys = await generateKeyPair();
  const name = dn(opts.commonName ?? 'isthmus-mesh-ca');
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name,
    ...window(opts.validity, DEFAULT_CA_DAYS),
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

interface LeafSpec {
  commonName: string;
  usage: x509.ExtendedKeyUsage[];
  sans?: x509.JsonGeneralName[];
  validity?: Validity;
}

async function issueLeaf(ca: KeyPairPem, spec: LeafSpec): Promise<KeyPairPem> {
  const caCert = parseCertificatePem(ca.certPem);
  const caKey = await importPrivateKeyPem(ca.keyPem);
  const keys = await generateKeyPair();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(spec.usage, false),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
  ];
  if (spec.sans && spec.sans.length > 0)
    extensions.push(new x509.SubjectAlternativeNameExtension(spec.sans, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: dn(spec.commonName),
    issuer: caCert.subject,
    ...window(spec.validity, DEFAULT_LEAF_DAYS),
    signingAlgorithm: SIGNING_ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions,
  });
  return {
    certPem: cert.toString('pem') + '\n',
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

export interface ServerCertRequest {
  cluster: string;
  /** addresses clients dial (the mesh etcd's IPs) */
  ips?: string[];
  /** DNS names clients dial */
  dnsNames?: string[];
  validity?: Validity;
}

/** The server certificate of a cluster's mesh etcd; also clientAuth, for etcd peer traffic. */
export async function issueServerCertificate(
  ca: KeyPairPem,
  req: ServerCertRequest,
): Promise<KeyPairPem> {
  const ips = req.ips ?? [];
  const dnsNames = req.dnsNames ?? [];
  for (const ip of ips)
    if (isIP(ip) === 0)
      throw new CertError('ERR_CERT_SAN', `--ip ${JSON.stringify(ip)} is not an IP address`);
  for (const d of dnsNames) {
    if (
      !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(
        d,
      )
    ) {
      throw new CertError('ERR_CERT_SAN', `--dns ${JSON.stringify(d)} is not a DNS name`);
    }
  }
  if (ips.length + dnsNames.length === 0) {
    throw new CertError(
      'ERR_CERT_SAN',
      'a server certificate needs at least one --ip or --dns name that clients dial',
    );
  }
  return issueLeaf(ca, {
    commonName: `${req.cluster}.mesh-etcd`,
    usage: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    sans: [
      ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...ips.map((value) => ({ type: 'ip' as const, value })),
    ],
    ...(req.validity ? { validity: req.validity } : {}),
  });
}

export interface ClientCertRequest {
  /** the etcd user name, e.g. `remote-c2` for cluster c2 reading, or `clustermesh-apiserver` */
  user: string;
  validity?: Validity;
}

/** The etcd user name of a remote cluster reading this cluster's mesh etcd. */
export function remoteReaderUser(readerCluster: string): string {
  return `remote-${readerCluster}`;
}

/** The etcd user of the clustermesh API server, the only writer. */
export const WRITER_USER = 'clustermesh-apiserver';

export async function issueClientCertificate(
  ca: KeyPairPem,
  req: ClientCertRequest,
): Promise<KeyPairPem> {
  return issueLeaf(ca, {
    commonName: req.user,
    usage: [x509.ExtendedKeyUsage.clientAuth],
    ...(req.validity ? { validity: req.validity } : {}),
  });
}
