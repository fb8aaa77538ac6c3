// Connection bundles: everything a cluster needs to read another cluster's mesh etcd (name, ID,
// endpoints, CA, client certificate and key, expiry), as a JWT (a JWS with an `exp` claim).
//
// Signer: the mesh CA's own key (ES256). Every cluster already trusts the mesh CA certificate —
// it is the trust anchor of the mTLS it sets up — so verifying needs no second trust root, and
// a bundle can only come from whoever can also issue mesh certificates. The JWS header carries
// `kid` = SHA-256 fingerprint of the signing CA, which tells "signed by another CA" apart from
// "tampered with".
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { Ajv } from 'ajv';
import { decodeProtectedHeader, jwtVerify, SignJWT, errors as joseErrors } from 'jose';
import { certificateFingerprint, CertError, type KeyPairPem } from './keys.ts';

export const BUNDLE_TYPE = 'isthmus-bundle+jwt';
export const BUNDLE_ISSUER = 'isthmus-mesh-ca';
export const BUNDLE_VERSION = 1;

export interface ConnectionBundle {
  version: number;
  cluster: string;
  clusterId: number;
  /** etcd endpoints of the cluster's mesh etcd, e.g. https://172.18.0.10:2379 */
  endpoints: string[];
  /** the etcd user the client certificate authenticates as (its CN) */
  user: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  /** RFC 3339; the bundle is refused after it (never later than the client certificate's expiry) */
  expiresAt: string;
}

export type BundleErrorCode =
  | 'ERR_BUNDLE_MALFORMED'
  | 'ERR_BUNDLE_TAMPERED'
  | 'ERR_BUNDLE_WRONG_SIGNER'
  | 'ERR_BUNDLE_EXPIRED'
  | 'ERR_BUNDLE_CERT_INVALID';

export interface BundleError {
  code: BundleErrorCode;
  detail: string;
}

export type BundleResult =
  { ok: true; value: ConnectionBundle } | { ok: false; error: BundleError };

const validateShape = new Ajv({ allErrors: false }).compile<ConnectionBundle>({
  type: 'object',
  required: [
    'version',
    'cluster',
    'clusterId',
    'endpoints',
    'user',
    'caPem',
    'certPem',
    'keyPem',
    'expiresAt',
  ],
  properties: {
    version: { const: BUNDLE_VERSION },
    cluster: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$' },
    clusterId: { type: 'integer', minimum: 1, maximum: 255 },
    endpoints: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', pattern: '^(https|unix|unixs)://.+' },
    },
    user: { type: 'string', minLength: 1 },
    caPem: { type: 'string', pattern: 'BEGIN CERTIFICATE' },
    certPem: { type: 'string', pattern: 'BEGIN CERTIFICATE' },
    keyPem: { type: 'string', pattern: 'BEGIN PRIVATE KEY' },
    expiresAt: { type: 'string' },
  },
});

export interface BundleRequest {
  cluster: string;
  clusterId: number;
  endpoints: string[];
  /** the reader's client certificate and key, issued by `ca` */
  client: KeyPairPem;
  /** defaults to the client certificate's expiry, and is capped by it */
  expiresAt?: Date;
}

function fail(code: BundleErrorCode, detail: string): BundleResult {
  return { ok: false, error: { code, detail } };
}

/** Signs a connection bundle with the mesh CA key; returns the compact JWS text. */
export async function signBundle(ca: KeyPairPem, req: BundleRequest): Promise<string> {
  const clientCert = new X509Certificate(req.client.certPem);
  const certExpiry = new Date(clientCert.validTo);
  const expiresAt = req.expiresAt && req.expiresAt < certExpiry ? req.expiresAt : certExpiry;
  const bundle: ConnectionBundle = {
    version: BUNDLE_VERSION,
    cluster: req.cluster,
    clusterId: req.clusterId,
    endpoints: req.endpoints,
    user: commonName(clientCert),
    caPem: ca.certPem,
    certPem: req.client.certPem,
    keyPem: req.client.keyPem,
    expiresAt: expiresAt.toISOString(),
  };
  if (!validateShape(bundle)) {
    const e = validateShape.errors?.[0];
    throw new CertError(
      'ERR_BUNDLE_MALFORMED',
      `cannot build bundle: ${e?.instancePath} ${e?.message}`,
    );
  }
  return new SignJWT({ bundle })
    .setProtectedHeader({ alg: 'ES256', typ: BUNDLE_TYPE, kid: certificateFingerprint(ca.certPem) })
    .setIssuer(BUNDLE_ISSUER)
    .setSubject(req.cluster)
    .setIssuedAt()
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(createPrivateKey(ca.keyPem));
}

/**
 * Verifies a bundle against the trusted mesh CA: signature (tampered or another signer are
 * told apart), expiry, structure, and that its certificates chain to that CA and are valid now.
 */
export async function verifyBundle(
  token: string,
  trustedCaPem: string,
  now: Date = new Date(),
): Promise<BundleResult> {
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(token.trim());
    kid = header.kid;
    if (header.typ !== BUNDLE_TYPE)
      return fail(
        'ERR_BUNDLE_MALFORMED',
        `not an isthmus bundle (typ ${JSON.stringify(header.typ)})`,
      );
  } catch {
    return fail(
      'ERR_BUNDLE_MALFORMED',
      'not a compact JWS: expected three base64url parts separated by dots',
    );
  }
  const trustedKid = certificateFingerprint(trustedCaPem);
  let payload: Record<string, unknown>;
  try {
    const verified = await jwtVerify(token.trim(), new X509Certificate(trustedCaPem).publicKey, {
      algorithms: ['ES256'],
      typ: BUNDLE_TYPE,
      issuer: BUNDLE_ISSUER,
      requiredClaims: ['exp', 'sub'],
      currentDate: now,
    });
    payload = verified.payload as Record<string, unknown>;
  } catch (e) {
    return classifyJoseError(e, kid, trustedKid);
  }
  const bundle = payload['bundle'];
  if (!validateShape(bundle)) {
    const e = validateShape.errors?.[0];
    return fail(
      'ERR_BUNDLE_MALFORMED',
      `bundle payload ${e?.instancePath || ''} ${e?.message ?? 'is invalid'}`,
    );
  }
  if (payload['sub'] !== bundle.cluster)
    return fail('ERR_BUNDLE_MALFORMED', 'the JWT subject and the bundle cluster differ');
  return checkBundleCertificates(bundle, trustedCaPem, now);
}

function classifyJoseError(e: unknown, kid: string | undefined, trustedKid: string): BundleResult {
  if (e instanceof joseErrors.JWTExpired) {
    return fail(
      'ERR_BUNDLE_EXPIRED',
      `the bundle expired (${e.message}): ask the cluster's operator for a new one`,
    );
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) {
    if (kid !== trustedKid) {
      return fail(
        'ERR_BUNDLE_WRONG_SIGNER',
        `the bundle was signed by another CA (kid ${kid ?? 'none'}), not the trusted mesh CA ${trustedKid.slice(0, 16)}…`,
      );
    }
    return fail(
      'ERR_BUNDLE_TAMPERED',
      'the bundle signature does not match its content: it was modified after signing',
    );
  }
  return fail(
    'ERR_BUNDLE_MALFORMED',
    `the bundle is not a valid signed bundle: ${(e as Error).message}`,
  );
}

function checkBundleCertificates(
  bundle: ConnectionBundle,
  trustedCaPem: string,
  now: Date,
): BundleResult {
  try {
    if (certificateFingerprint(bundle.caPem) !== certificateFingerprint(trustedCaPem)) {
      return fail(
        'ERR_BUNDLE_CERT_INVALID',
        'the bundle carries a different CA than the trusted mesh CA',
      );
    }
    const ca = new X509Certificate(trustedCaPem);
    const cert = new X509Certificate(bundle.certPem);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
      return fail(
        'ERR_BUNDLE_CERT_INVALID',
        'the client certificate was not issued by the trusted mesh CA',
      );
    }
    if (now < new Date(cert.validFrom) || now > new Date(cert.validTo)) {
      return fail(
        'ERR_BUNDLE_CERT_INVALID',
        `the client certificate is not valid now (valid ${cert.validFrom} to ${cert.validTo})`,
      );
    }
    if (commonName(cert) !== bundle.user) {
      return fail(
        'ERR_BUNDLE_CERT_INVALID',
        `the bundle names user ${bundle.user}, its certificate ${commonName(cert)}`,
      );
    }
    const fromKey = createPublicKey(createPrivateKey(bundle.keyPem)).export({
      format: 'der',
      type: 'spki',
    });
    if (!fromKey.equals(cert.publicKey.export({ format: 'der', type: 'spki' }))) {
      return fail(
        'ERR_BUNDLE_CERT_INVALID',
        'the client key does not belong to the client certificate',
      );
    }
  } catch (cause) {
    return fail(
      'ERR_BUNDLE_CERT_INVALID',
      `unreadable certificate or key in the bundle: ${(cause as Error).message}`,
    );
  }
  return { ok: true, value: bundle };
}

function commonName(cert: X509Certificate): string {
  return /^CN=(.+)$/m.exec(cert.subject)?.[1] ?? '';
}
