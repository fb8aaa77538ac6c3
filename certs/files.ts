// PEM files on disk. Keys are written 0600 (certificates 0644), each through a temporary file
// renamed into place, so a watcher never reads a half-written file.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CertError, type KeyPairPem } from './keys.ts';

export const CA_BASENAME = 'ca';

export interface KeyPairPaths {
  certPath: string;
  keyPath: string;
}

export function keyPairPaths(dir: string, baseName: string): KeyPairPaths {
  return { certPath: join(dir, `${baseName}.crt`), keyPath: join(dir, `${baseName}.key`) };
}

/** Writes `text` to `path` atomically with `mode`. */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode, flag: 'wx' });
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new CertError(
      'ERR_CERT_WRITE',
      `cannot write ${path}: check the directory exists and is writable`,
      { cause },
    );
  }
}

export async function writeKeyPair(
  dir: string,
  baseName: string,
  pair: KeyPairPem,
): Promise<KeyPairPaths> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths = keyPairPaths(dir, baseName);
  await writeFileAtomic(paths.keyPath, pair.keyPem, 0o600);
  await writeFileAtomic(paths.certPath, pair.certPem, 0o644);
  return paths;
}

export async function readKeyPair(dir: string, baseName: string): Promise<KeyPairPem> {
  const { certPath, keyPath } = keyPairPaths(dir, baseName);
  try {
    return { certPem: await readFile(certPath, 'utf8'), keyPem: await readFile(keyPath, 'utf8') };
  } catch (cause) {
    throw new CertError(
      'ERR_CERT_READ',
      `cannot read ${certPath} and ${keyPath}: create them first (e.g. \`isthmus certs ca --out ${dir}\`)`,
      { cause },
    );
  }
}
