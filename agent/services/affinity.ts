// Which backends a service uses: the annotations in force and the affinity selection (Cilium's
// global-service semantics: local|remote prefer one side while it has a ready backend).
import {
  ANNOTATION_AFFINITY,
  ANNOTATION_GLOBAL,
  ANNOTATION_SHARED,
  type Affinity,
  type Backend,
  type GlobalSettings,
} from './types.ts';

const AFFINITIES: readonly Affinity[] = ['local', 'remote', 'none'];

export function globalSettings(annotations: Record<string, string>): GlobalSettings {
  const invalid: string[] = [];
  const bool = (key: string, dflt: boolean): boolean => {
    const v = annotations[key];
    if (v === undefined) return dflt;
    const lower = v.toLowerCase();
    if (lower === 'true' || lower === 'false') return lower === 'true';
    invalid.push(`${key}=${v}`);
    return dflt;
  };
  const global = bool(ANNOTATION_GLOBAL, false);
  const shared = global && bool(ANNOTATION_SHARED, true);
  const raw = annotations[ANNOTATION_AFFINITY];
  let affinity: Affinity = 'none';
  if (raw !== undefined) {
    if ((AFFINITIES as readonly string[]).includes(raw.toLowerCase()))
      affinity = raw.toLowerCase() as Affinity;
    else invalid.push(`${ANNOTATION_AFFINITY}=${raw}`);
  }
  return { global, shared, affinity: global ? affinity : 'none', invalid };
}

export interface Candidates {
  local: Backend[];
  /** cluster name -> backends that cluster shares */
  remote: Map<string, Backend[]>;
}

/** The backends in use, each tagged with its cluster ('' = local). Only ready backends are
 * used; a non-global service never uses remote backends. */
export function selectBackends(
  settings: GlobalSettings,
  c: Candidates,
): Array<{ cluster: string; backend: Backend }> {
  const local = c.local.filter((b) => b.ready).map((backend) => ({ cluster: '', backend }));
  if (!settings.global) return local;
  const remote = [...c.remote].flatMap(([cluster, bs]) =>
    bs.filter((b) => b.ready).map((backend) => ({ cluster, backend })),
  );
  if (settings.affinity === 'local') return local.length > 0 ? local : remote;
  if (settings.affinity === 'remote') return remote.length > 0 ? remote : local;
  return [...local, ...remote];
}
