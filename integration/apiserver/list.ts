// List queries: label and field selectors, limit and continue.
import type { ResourceType } from './resources.ts';
import type { KubeObject, ListResult, ObjectStore } from './store.ts';
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.ts';

export interface ListQuery {
  labelSelector: string | undefined;
  fieldSelector: string | undefined;
  limit: number | undefined;
  continueToken: string | undefined;
}

export function parseListQuery(q: URLSearchParams): ListQuery {
  const limit = Number(q.get('limit') ?? '');
  return {
    labelSelector: q.get('labelSelector') ?? undefined,
    fieldSelector: q.get('fieldSelector') ?? undefined,
    limit: Number.isInteger(limit) && limit > 0 ? limit : undefined,
    continueToken: q.get('continue') || undefined,
  };
}

/** The object filter of a query; throws 400 BadRequest for a selector that does not parse. */
export function makeFilter(r: ResourceType, query: ListQuery): (o: KubeObject) => boolean {
  const labels = parseLabelSelector(query.labelSelector);
  const fields = parseFieldSelector(query.fieldSelector, [
    'metadata.name',
    ...(r.namespaced ? ['metadata.namespace'] : []),
    ...r.selectableFields,
  ]);
  return (o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o);
}

export function listObjects(
  store: ObjectStore,
  r: ResourceType,
  namespace: string | undefined,
  query: ListQuery,
): Promise<ListResult> {
  return store.list(r, namespace, {
    filter: makeFilter(r, query),
    ...(query.limit !== undefined ? { limit: query.limit } : {}),
    ...(query.continueToken !== undefined ? { continueToken: query.continueToken } : {}),
  });
}
