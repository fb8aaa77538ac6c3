// Reconnect delays: exponential from `minMs` to `maxMs`, with jitter so that the agents of a
// cluster do not all reconnect to a recovering remote etcd in the same instant.
export interface BackoffOptions {
  minMs: number;
  maxMs: number;
  /** fraction of the delay that is randomized, 0..1 */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { minMs: 500, maxMs: 30_000, jitter: 0.5 };

/** Delay before attempt `attempt` (0 = first retry), in [d*(1-jitter), d]. */
export function backoffDelay(
  attempt: number,
  o: BackoffOptions = DEFAULT_BACKOFF,
  random: () => number = Math.random,
): number {
  const d = Math.min(o.maxMs, o.minMs * 2 ** Math.min(attempt, 30));
  return Math.round(d * (1 - o.jitter * random()));
}
