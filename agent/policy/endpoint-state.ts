// Per-endpoint state of the engine and the delta type it emits.
import type { SecurityLabels } from '../identity/types.ts';
import type { Direction, PolicyEntry, PrefixEntry } from './entry.ts';
import type { CidrRule } from './resolve.ts';
import type { NamedPort, PolicyRule } from './types.ts';

export interface LocalEndpoint {
  /** stable name, e.g. `c1/x/a` */
  name: string;
  identity: number;
  namedPorts: readonly NamedPort[];
}

/** What changed for one endpoint; the datapath reconciler writes exactly this. */
export interface EndpointDelta {
  endpoint: string;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  add: PolicyEntry[];
  remove: PolicyEntry[];
  addPrefixes: PrefixEntry[];
  removePrefixes: PrefixEntry[];
}

export interface DirState {
  enforced: boolean;
  rules: PolicyRule[];
  /** peer -> entry keys currently emitted for it */
  byPeer: Map<number, string[]>;
  /** prefix class id -> the CIDR rules covering it */
  classes: Map<number, CidrRule[]>;
  prefixes: Map<string, PrefixEntry>;
}

export interface EndpointState {
  ep: LocalEndpoint;
  labels: SecurityLabels;
  policies: string[];
  selectors: Set<string>;
  entries: Map<string, PolicyEntry>;
  dirs: Record<Direction, DirState>;
}

export const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export function emptyDir(): DirState {
  return { enforced: false, rules: [], byPeer: new Map(), classes: new Map(), prefixes: new Map() };
}

export function newState(ep: LocalEndpoint, labels: SecurityLabels): EndpointState {
  return {
    ep,
    labels,
    policies: [],
    selectors: new Set(),
    entries: new Map(),
    dirs: { ingress: emptyDir(), egress: emptyDir() },
  };
}

export function* allPrefixes(s: EndpointState): Iterable<PrefixEntry> {
  for (const d of DIRECTIONS) yield* s.dirs[d].prefixes.values();
}

/** Values of `a` whose keys `b` lacks. */
export function missingFrom<T>(a: Map<string, T>, b: Map<string, T>): T[] {
  const out: T[] = [];
  for (const [k, v] of a) if (!b.has(k)) out.push(v);
  return out;
}

export function makeDelta(
  s: EndpointState,
  change: Pick<EndpointDelta, 'add' | 'remove' | 'addPrefixes' | 'removePrefixes'>,
): EndpointDelta {
  return {
    endpoint: s.ep.name,
    ingressEnforced: s.dirs.ingress.enforced,
    egressEnforced: s.dirs.egress.enforced,
    ...change,
  };
}

export function isEmpty(d: EndpointDelta): boolean {
  return d.add.length + d.remove.length + d.addPrefixes.length + d.removePrefixes.length === 0;
}
