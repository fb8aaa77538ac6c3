// The node's WireGuard key: X25519, generated once, persisted 0600 in the node's state dir.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WireguardError } from './types.ts';

export interface WgKeyPair {
  /** base64 of the raw 32-byte private key, the format `wg` reads */
  privateKey: string;
  publicKey: string;
  /** the file holding privateKey */
  path: string;
}

/** A fresh key pair (not persisted). */
export function generateKey(): { privateKey: string; publicKey: string } {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (!jwk.d) throw new WireguardError('ISTHMUS_WG_KEY', 'x25519 key without a private part');
  const raw = Buffer.from(jwk.d, 'base64url');
  return { privateKey: raw.toString('base64'), publicKey: publicKeyOf(raw.toString('base64')) };
}

/** Derives the base64 public key from a base64 raw private key. */
export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(privateKey, 'base64');
  if (raw.length !== 32)
    throw new WireguardError('ISTHMUS_WG_KEY', 'a WireGuard private key is 32 bytes in base64');
  const key = createPrivateKey({
    key: { kty: 'OKP', crv: 'X25519', d: raw.toString('base64url'), x: '' },
    format: 'jwk',
  });
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url').toString('base64');
}

export function isWgKey(text: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$/.test(text);
}

/** Loads the key at path, creating it (mode 0600) when absent. Refuses a readable-by-others or
 * malformed file rather than using or replacing it. */
export async function loadOrCreateKey(path: string): Promise<WgKeyPair> {
  const existing = await readKey(path);
  if (existing) return existing;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pair = generateKey();
  // Written whole to a temporary file, then linked into place: a crash never leaves a torn key,
  // and link() fails if the file exists, so two racing starts agree on the first one.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, pair.privateKey + '\n', { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err; // a concurrent start wrote it first: use that one
    });
  } finally {
    await unlink(tmp).catch(() => {});
  }
  const written = await readKey(path);
  if (!written) throw new WireguardError('ISTHMUS_WG_KEY', `cannot persist key at ${path}`);
  return written;
}

async function readKey(path: string): Promise<WgKeyPair | null> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new WireguardError('ISTHMUS_WG_KEY', `cannot read key ${path}`, { cause: err });
  }
  if (!isWgKey(text))
    throw new WireguardError(
      'ISTHMUS_WG_KEY',
      `${path} does not hold a base64 WireGuard key: fix or remove it (the node gets a new key)`,
    );
  if (((await stat(path)).mode & 0o077) !== 0) await chmod(path, 0o600);
  return { privateKey: text, publicKey: publicKeyOf(text), path };
}
