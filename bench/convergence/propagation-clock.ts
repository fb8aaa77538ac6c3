// The clock of the propagation benchmarks (bench/mesh/propagation.ts, bench/services/
// global-propagation.ts): a key (an IP) starts when the source cluster's own API first serves it
// (a watch over the API server's unix socket) and stops when it first lands in a node's pinned
// maps (polled every few ms). Everything ends by stop(): the watch, the poller.
import http from 'node:http';

/** Streams watch events (JSON lines) of an API path over a unix socket; returns the stop. */
export function watchApi<T>(
  socket: string,
  path: string,
  onEvent: (type: string, object: T) => void,
): () => void {
  const req = http.request({ socketPath: socket, path, headers: { Accept: 'application/json' } });
  req.on('response', (res) => {
    let buf = '';
    res.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line) as { type: string; object: T };
        onEvent(ev.type, ev.object);
      }
    });
  });
  req.on('error', () => {}); // ended by stop(), or the lab went down: the figures say what landed
  req.end();
  return () => req.destroy();
}

export class PropagationClock {
  private readonly served = new Map<string, number>();
  private readonly landed = new Map<string, number>();
  private polling = true;
  private readonly poller: Promise<void>;

  /** `landedNow` gets the served keys not landed yet and returns those in the maps now. */
  constructor(landedNow: (pending: string[]) => Iterable<string>, everyMs = 2) {
    this.poller = (async () => {
      while (this.polling) {
        const pending = [...this.served.keys()].filter((k) => !this.landed.has(k));
        const now = performance.now();
        for (const k of landedNow(pending)) this.landed.set(k, now);
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
  }

  /** The source served `key`: the clock starts (only the first time). */
  serve(key: string): void {
    if (!this.served.has(key)) this.served.set(key, performance.now());
  }

  hasLanded(key: string): boolean {
    return this.landed.has(key);
  }

  get landedCount(): number {
    return this.landed.size;
  }

  /** Stops polling; the latency (ms) of every key that landed. */
  async stop(): Promise<number[]> {
    this.polling = false;
    await this.poller;
    return [...this.landed].map(([k, at]) => at - this.served.get(k)!);
  }
}
