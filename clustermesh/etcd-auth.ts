// Users and roles of a cluster's mesh etcd (DESIGN.md "The kvstore"): the clustermesh API server's
// writer user reads and writes `cilium/`, each remote cluster gets its own user that may only read
// `cilium/`, and root is used for this set-up only. With `--client-cert-auth` etcd maps a client
// certificate's CN to the user, so passwords are random and never stored: nobody logs in by
// password. Every function is idempotent and needs a client authenticated as root (CN=root).
import { randomBytes } from 'node:crypto';
import { Range, type Etcd3 } from 'etcd3';
import { WRITER_USER, remoteReaderUser } from '../certs/index.ts';
import { BASE_PREFIX, isValidClusterName } from './kvstore/index.ts';

export const ROOT_USER = 'root';
export const MESH_WRITER_ROLE = 'isthmus-mesh-writer';
export const MESH_READER_ROLE = 'isthmus-mesh-reader';
/** Everything of the layout lives under `cilium/` (Cilium's kvstore BaseKeyPrefix). */
export const MESH_KEY_PREFIX = `${BASE_PREFIX}/`;

export type MeshAuthErrorCode = 'ERR_MESH_AUTH_SETUP' | 'ERR_MESH_AUTH_USER';

export class MeshAuthError extends Error {
  constructor(
    readonly code: MeshAuthErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MeshAuthError';
  }
}

async function userNames(root: Etcd3): Promise<Set<string>> {
  return new Set((await root.getUsers()).map((u) => u.name));
}

async function ensureRole(root: Etcd3, name: string, permission: 'Read' | 'Readwrite') {
  const roles = new Set((await root.getRoles()).map((r) => r.name));
  const role = root.role(name);
  if (!roles.has(name)) await role.create();
  const range = Range.prefix(MESH_KEY_PREFIX);
  const held = await role.permissions();
  const exact = held.some((p) => p.permission === permission && p.range.compare(range) === 0);
  // A role holds exactly one grant on cilium/; a leftover wider or other one is replaced.
  for (const p of held) if (!exact || p.permission !== permission) await role.revoke(p);
  if (!exact) await role.grant({ permission, range });
}

async function ensureUser(root: Etcd3, name: string, role?: string): Promise<void> {
  if (!(await userNames(root)).has(name)) {
    await root.user(name).create(randomBytes(24).toString('base64url'));
  }
  if (role === undefined) return;
  const roles = await root.user(name).roles();
  if (!roles.some((r) => r.name === role)) await root.user(name).addRole(role);
}

/**
 * Prepares a fresh (or already prepared) mesh etcd: the root user, the writer and reader roles,
 * the writer user, then enables auth. Run it with a client whose certificate CN is `root`.
 */
export async function setupMeshEtcdAuth(root: Etcd3): Promise<void> {
  try {
    await ensureUser(root, ROOT_USER, 'root');
    await ensureRole(root, MESH_WRITER_ROLE, 'Readwrite');
    await ensureRole(root, MESH_READER_ROLE, 'Read');
    await ensureUser(root, WRITER_USER, MESH_WRITER_ROLE);
    await root.auth.authEnable(); // etcd ignores it when already enabled
  } catch (cause) {
    throw new MeshAuthError(
      'ERR_MESH_AUTH_SETUP',
      `setting up users and roles of the mesh etcd failed: ${(cause as Error).message}; ` +
        'connect with the root client certificate (CN=root) of the mesh CA',
      { cause },
    );
  }
}

function requireCluster(cluster: string): void {
  if (!isValidClusterName(cluster)) {
    throw new MeshAuthError(
      'ERR_MESH_AUTH_USER',
      `invalid cluster name ${JSON.stringify(cluster)}: use 1-32 lowercase letters, digits and '-'`,
    );
  }
}

/** Lets cluster `readerCluster` read this mesh etcd (user `remote-<cluster>`, read-only role). */
export async function addRemoteReader(root: Etcd3, readerCluster: string): Promise<string> {
  requireCluster(readerCluster);
  const user = remoteReaderUser(readerCluster);
  try {
    await ensureUser(root, user, MESH_READER_ROLE);
  } catch (cause) {
    throw new MeshAuthError(
      'ERR_MESH_AUTH_USER',
      `adding reader ${user}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return user;
}

/**
 * Removes cluster `readerCluster`'s user: its certificate stays valid TLS-wise, but etcd checks the
 * CN's user on every request, so its reads fail at once. Returns false when there was no user.
 */
export async function revokeRemoteReader(root: Etcd3, readerCluster: string): Promise<boolean> {
  requireCluster(readerCluster);
  const user = remoteReaderUser(readerCluster);
  try {
    if (!(await userNames(root)).has(user)) return false;
    await root.user(user).delete();
    return true;
  } catch (cause) {
    throw new MeshAuthError(
      'ERR_MESH_AUTH_USER',
      `revoking reader ${user}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** The remote clusters that currently have a reader user. */
export async function listRemoteReaders(root: Etcd3): Promise<string[]> {
  const prefix = remoteReaderUser('');
  return [...(await userNames(root))]
    .filter((u) => u.startsWith(prefix))
    .map((u) => u.slice(prefix.length))
    .sort();
}
