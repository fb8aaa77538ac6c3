// Client of a node agent's WireGuard socket (agent/daemon/encryption.ts): status and rotation.
import { connect } from 'node:net';
import { wireguardSocketPath, type EncryptionStatus } from './encryption.ts';

export class WireguardClientError extends Error {
  readonly code = 'ISTHMUS_WIREGUARD_CLIENT';
}

/** One JSON request on a node's WireGuard socket. */
export function callWireguard(
  stateDir: string,
  req: { op: 'status' | 'rotate'; handshakeTimeoutMs?: number },
  timeoutMs = 10_000,
): Promise<{ ok: boolean; error?: string; status?: EncryptionStatus; rotation?: unknown }> {
  const path = wireguardSocketPath(stateDir);
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.write(JSON.stringify(req) + '\n'));
    let buf = '';
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => {
      s.destroy();
      reject(new WireguardClientError(`no answer from ${path} within ${timeoutMs} ms`));
    });
    s.on('data', (d: string) => (buf += d));
    s.on('end', () => {
      try {
        resolve(JSON.parse(buf));
      } catch (err) {
        reject(new WireguardClientError(`bad answer from ${path}: ${buf}`, { cause: err }));
      }
    });
    s.on('error', (err) =>
      reject(
        new WireguardClientError(`cannot reach ${path}: is encryption on for this node?`, {
          cause: err,
        }),
      ),
    );
  });
}
