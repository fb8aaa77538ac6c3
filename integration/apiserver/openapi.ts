// OpenAPI v3 documents for the kinds served. kubectl reads them to learn that the server
// validates fields itself (the `fieldValidation` parameter on PATCH), so it needs no client-side
// schema; the PATCH operations declare no strategic-merge request body, so kubectl computes
// strategic merge patches from its compiled-in types, as it does for built-in kinds.
import { createHash } from 'node:crypto';
import { RESOURCES, groupVersions, type ResourceType } from './resources.ts';

const gvPath = (group: string, version: string) =>
  group ? `apis/${group}/${version}` : `api/${version}`;

function schemaName(r: ResourceType): string {
  if (r.custom) return `${r.group.split('.').reverse().join('.')}.${r.version}.${r.kind}`;
  const pkg = r.group === '' ? 'core' : r.group.replace('.k8s.io', '');
  return `io.k8s.api.${pkg}.${r.version}.${r.kind}`;
}

const param = (name: string, where: 'path' | 'query') => ({
  name,
  in: where,
  ...(where === 'path' ? { required: true } : {}),
  schema: { type: 'string', uniqueItems: true },
});

const QUERY_PARAMS = ['dryRun', 'fieldManager', 'fieldValidation', 'pretty'].map((n) =>
  param(n, 'query'),
);

function operation(r: ResourceType, action: string, id: string): object {
  const ref = { $ref: `#/components/schemas/${schemaName(r)}` };
  return {
    operationId: id,
    // kubectl looks for fieldValidation among each PATCH operation's own query parameters.
    parameters: QUERY_PARAMS,
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
    responses: { '200': { description: 'OK', content: { 'application/json': { schema: ref } } } },
  };
}

function resourcePaths(r: ResourceType): Record<string, object> {
  const base = `/${gvPath(r.group, r.version)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.resource}`;
  const nsParam = r.namespaced ? [param('namespace', 'path')] : [];
  const id = `${r.kind}${r.group.replace(/\W/g, '')}`;
  const item = {
    parameters: [param('name', 'path'), ...nsParam],
    get: operation(r, 'get', `read${id}`),
    put: operation(r, 'put', `replace${id}`),
    patch: operation(r, 'patch', `patch${id}`),
    delete: operation(r, 'delete', `delete${id}`),
  };
  const collection = {
    parameters: nsParam,
    get: operation(r, 'list', `list${id}`),
    post: operation(r, 'post', `create${id}`),
  };
  const paths: Record<string, object> = { [base]: collection, [`${base}/{name}`]: item };
  if (r.statusSubresource) {
    paths[`${base}/{name}/status`] = {
      parameters: item.parameters,
      get: operation(r, 'get', `read${id}Status`),
      put: operation(r, 'put', `replace${id}Status`),
      patch: operation(r, 'patch', `patch${id}Status`),
    };
  }
  return paths;
}

function schema(r: ResourceType): object {
  const open = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  return {
    type: 'object',
    description: `${r.kind} (served by the Isthmus lab API server)`,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: open,
      spec: open,
      status: open,
    },
    'x-kubernetes-group-version-kind': [{ group: r.group, version: r.version, kind: r.kind }],
  };
}

export function openApiV3Document(group: string, version: string): object | undefined {
  const rs = RESOURCES.filter((r) => r.group === group && r.version === version);
  if (rs.length === 0) return undefined;
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0-isthmus-lab' },
    paths: Object.assign({}, ...rs.map(resourcePaths)),
    components: { schemas: Object.fromEntries(rs.map((r) => [schemaName(r), schema(r)])) },
  };
}

export function openApiV3Root(): object {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const { group, version } of groupVersions()) {
    const doc = JSON.stringify(openApiV3Document(group, version));
    const hash = createHash('sha512').update(doc).digest('hex').slice(0, 64).toUpperCase();
    paths[gvPath(group, version)] = {
      serverRelativeURL: `/openapi/v3/${gvPath(group, version)}?hash=${hash}`,
    };
  }
  return { paths };
}
