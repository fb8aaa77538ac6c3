// The node's WireGuard control socket: one JSON line in, one JSON line out, on a unix socket in
// the node's state directory. close() answers every request still open with "agent stopping"
// and ends its connection, so a stop never waits on a rotation a client is waiting for.
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';

export type ControlAnswer = Record<string, unknown>;

export const STOPPING_ANSWER = {
  ok: false,
  code: 'ISTHMUS_AGENT_STOPPING',
  error: 'agent stopping: the request was not finished; ask again once the agent is back',
} as const;

export class ControlSocket {
  private readonly open = new Set<Socket>();
  private closing = false;

  private constructor(private readonly server: Server) {}

  /** Listens on `path` (a stale socket file there is replaced). */
  static async listen(
    path: string,
    answer: (line: string) => Promise<ControlAnswer>,
  ): Promise<ControlSocket> {
    rmSync(path, { force: true });
    let self: ControlSocket | undefined;
    const server = createServer((socket) => self?.serve(socket, answer));
    self = new ControlSocket(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    return self;
  }

  get listening(): boolean {
    return this.server.listening && !this.closing;
  }

  /** Stops listening and answers every open request with STOPPING_ANSWER at once. */
  async close(): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.open) reply(s, STOPPING_ANSWER);
    this.open.clear();
    await closed;
  }

  private serve(socket: Socket, answer: (line: string) => Promise<ControlAnswer>): void {
    if (this.closing) return reply(socket, STOPPING_ANSWER);
    this.open.add(socket);
    socket.on('close', () => this.open.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setEncoding('utf8');
    let buf = '';
    socket.on('data', (chunk: string) => {
      buf += chunk;
      const end = buf.indexOf('\n');
      if (end < 0 || socket.readableEnded) return;
      socket.pause(); // one request per connection
      void answer(buf.slice(0, end))
        .catch((err: unknown) => ({ ok: false, error: String(err) }))
        .then((a) => {
          if (this.open.delete(socket)) reply(socket, a);
        });
    });
  }
}

/** Writes the answer and ends the connection; destroyed if the client does not read it. */
function reply(socket: Socket, a: ControlAnswer): void {
  if (socket.destroyed) return;
  socket.end(JSON.stringify(a) + '\n');
  setTimeout(() => socket.destroy(), 1000).unref();
}
