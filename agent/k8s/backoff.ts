// Exponential back-off with full jitter and a cap, so many agents retrying after an API server
// restart do not reconnect in lock step.

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Random source in [0,1); injectable for tests. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 100, maxMs: 10_000 };

export class Backoff {
  private failures = 0;

  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {}

  /** Delay before the next attempt; grows with each call until `reset()`. */
  next(): number {
    const ceiling = Math.min(this.opts.maxMs, this.opts.baseMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const r = (this.opts.random ?? Math.random)();
    // Half fixed, half jitter: never zero, never above the cap.
    return Math.round(ceiling / 2 + (r * ceiling) / 2);
  }

  get attempts(): number {
    return this.failures;
  }

  reset(): void {
    this.failures = 0;
  }
}

/** A timer that never keeps the process alive. */
export function unrefTimeout(fn: () => void, ms: number): NodeJS.Timeout {
  const t = setTimeout(fn, ms);
  t.unref();
  return t;
}
