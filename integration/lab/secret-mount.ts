// The lab's stand-in for kubelet's Secret volume: the Secret kube-system/cilium-clustermesh of a
// cluster, kept in every node's bundle directory (one file per data key, written atomically;
// a key removed from the Secret removes its file, a deleted Secret empties the directory), so
// `isthmus clustermesh connect` on real contexts reaches the agents with no lab hook. Run as a
// detached process per cluster (secret-mount-main.ts) polling the API server's unix socket.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../certs/index.ts';
import { MESH_SECRET } from '../../agent/clustermesh/connect.ts';
import { apiRequest, type ApiRequestError } from './control-plane.ts';

const SECRET_PATH = `/api/v1/namespaces/${MESH_SECRET.namespace}/secrets/${MESH_SECRET.name}`;
/** the Secret's keys are cluster names; anything else in the directory is a write in flight */
const BUNDLE_FILE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** The Secret's data (decoded); empty when it does not exist. */
export async function readMeshSecret(apiSocket: string): Promise<Record<string, string>> {
  const s = (await apiRequest(apiSocket, 'GET', SECRET_PATH).catch((err: ApiRequestError) => {
    if (err.status === 404) return undefined;
    throw err;
  })) as { data?: Record<string, string> } | undefined;
  return Object.fromEntries(
    Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
  );
}

/** Makes `dir` hold exactly `data` (one file per key); returns the files changed or removed. */
export async function mountInto(dir: string, data: Record<string, string>): Promise<number> {
  mkdirSync(dir, { recursive: true });
  let changed = 0;
  for (const f of readdirSync(dir))
    if (BUNDLE_FILE.test(f) && !(f in data)) {
      rmSync(join(dir, f), { force: true });
      changed++;
    }
  for (const [key, value] of Object.entries(data)) {
    if (!BUNDLE_FILE.test(key)) continue; // never a path outside dir
    const file = join(dir, key);
    let old: string | undefined;
    try {
      old = readFileSync(file, 'utf8');
    } catch {
      old = undefined;
    }
    if (old === value) continue;
    await writeFileAtomic(file, value, 0o600);
    changed++;
  }
  return changed;
}

/** One pass: the Secret as it is now, into every directory. */
export async function mountSecretOnce(apiSocket: string, dirs: string[]): Promise<number> {
  const data = await readMeshSecret(apiSocket);
  let changed = 0;
  for (const dir of dirs) changed += await mountInto(dir, data);
  return changed;
}

/** Polls until `signal` aborts; a failed pass (API server restarting) is retried next period. */
export async function runSecretMount(
  apiSocket: string,
  dirs: string[],
  periodMs: number,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<void> {
  while (!signal.aborted) {
    try {
      const n = await mountSecretOnce(apiSocket, dirs);
      if (n) log(`${MESH_SECRET.name}: ${n} file(s) updated in ${dirs.length} node(s)`);
    } catch (err) {
      log(`reading ${MESH_SECRET.name} failed: ${(err as Error).message}; retrying`);
    }
    await new Promise((r) => setTimeout(r, periodMs));
  }
}
