// ECDSA P-256 keys and PEM plumbing shared by the CA, issuance and bundle signing.
// @peculiar/x509 decorates its ASN.1 classes, so reflect-metadata must be loaded before it.
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const EC_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A certificate with its private key, both PEM. */
export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

/** Thrown for certificate and bundle failures; `code` is stable, the message says what to do. */
export class CertError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'CertError';
  }
}

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALGORITHM, true, [
    'sign',
    'verify',
  ])) as CryptoKeyPair;
}

export function pemEncode(label: string, der: ArrayBuffer | Uint8Array): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

export function pemDecode(label: string, pem: string): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(
    pem,
  );
  if (!m) throw new CertError('ERR_CERT_PEM', `expected a PEM block "${label}"`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return pemEncode('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** Imports a PKCS#8 P-256 private key for signing certificates. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  try {
    const der = pemDecode('PRIVATE KEY', pem);
    return (await webcrypto.subtle.importKey('pkcs8', der, EC_ALGORITHM, true, [
      'sign',
    ])) as CryptoKey;
  } catch (cause) {
    throw new CertError('ERR_CERT_KEY', 'the private key is not a PKCS#8 ECDSA P-256 PEM key', {
      cause,
    });
  }
}

export function parseCertificatePem(pem: string): x509.X509Certificate {
  try {
    return new x509.X509Certificate(pem);
  } catch (cause) {
    throw new CertError('ERR_CERT_PEM', 'the certificate is not a valid PEM X.509 certificate', {
      cause,
    });
  }
}

/** SHA-256 of the DER certificate, hex: a stable ID of a CA (used as the bundle JWS `kid`). */
export function certificateFingerprint(certPem: string): string {
  return createHash('sha256').update(pemDecode('CERTIFICATE', certPem)).digest('hex');
}

export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0]! &= 0x7f; // positive INTEGER
  return Buffer.from(bytes).toString('hex');
}

export { x509 };
