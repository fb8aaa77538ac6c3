// Read-back of many endpoints in one synchronous pass. The policy and prefix maps are single maps
// keyed by endpoint id (LPM tries: no seek by endpoint), so reading one endpoint walks the whole
// map; a status request or full pass reading every endpoint that way costs endpoints x entries
// syscalls (167 endpoints x 6,000 entries: ~2M per pass). Inside `run`, the first read walks the
// map once and groups it by endpoint; writes through the map drop the grouping.
export class EndpointReadBatch<E> {
  private depth = 0;
  private byEndpoint: Map<number, E[]> | undefined;

  constructor(private readonly walk: () => Map<number, E[]>) {}

  run<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      if (--this.depth === 0) this.byEndpoint = undefined;
    }
  }

  /** The endpoint's entries from the batch's walk; undefined outside a batch. */
  read(endpointId: number): E[] | undefined {
    if (this.depth === 0) return undefined;
    this.byEndpoint ??= this.walk();
    return this.byEndpoint.get(endpointId) ?? [];
  }

  invalidate(): void {
    this.byEndpoint = undefined;
  }
}

/** Appends `value` to the list of `key`. */
export function pushTo<E>(m: Map<number, E[]>, key: number, value: E): void {
  const list = m.get(key);
  if (list) list.push(value);
  else m.set(key, [value]);
}
