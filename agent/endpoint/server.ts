// The agent's endpoint API: a unix socket in the node's state dir. One JSON request line per
// connection, one JSON response line back. The CNI plugin is the client (client.ts).
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { EndpointManager } from './manager.ts';
import { CniCode, type EndpointRequest, type EndpointResponse } from './types.ts';

const MAX_REQUEST_BYTES = 64 * 1024;

export class EndpointServer {
  private server: Server | undefined;

  constructor(
    private readonly socketPath: string,
    private readonly manager: EndpointManager,
    /** answers `status` requests (the daemon's view); without it they are refused */
    private readonly status?: () => Promise<unknown>,
  ) {}

  async start(): Promise<void> {
    rmSync(this.socketPath, { force: true }); // a socket file left by a previous agent
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }

  private serve(socket: Socket): void {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0 && buffer.length < MAX_REQUEST_BYTES) return;
      socket.removeAllListeners('data');
      void this.answer(nl < 0 ? buffer : buffer.slice(0, nl)).then((response) =>
        socket.end(JSON.stringify(response) + '\n'),
      );
    });
  }

  private async answer(line: string): Promise<EndpointResponse> {
    let req: EndpointRequest;
    try {
      req = JSON.parse(line) as EndpointRequest;
    } catch {
      return {
        ok: false,
        error: { code: CniCode.DECODE_FAILURE, msg: 'endpoint request is not one JSON line' },
      };
    }
    try {
      if (req?.op === 'status') {
        if (!this.status)
          return {
            ok: false,
            error: { code: CniCode.DECODE_FAILURE, msg: 'status is not served' },
          };
        return { ok: true, status: await this.status() };
      }
      return await this.manager.handle(req);
    } catch (err) {
      return {
        ok: false,
        error: {
          code: CniCode.IO_FAILURE,
          msg: 'agent failed to handle the request',
          details: err instanceof Error ? err.message : String(err),
        },
      };
    }
  }
}
