// The lab's Kubernetes API server: HTTP routing over node:http, JSON in and out, listening on
// a unix socket and optionally on TCP inside the network namespace it runs in.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { rm } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import { findResource, type ResourceType } from './resources.ts';
import { ObjectStore, type KubeObject } from './store.ts';
import { ObjectService, patchTypeOf } from './objects.ts';
import { ServiceIpAllocator } from './service-ips.ts';
import { decodeKubernetesProtobuf } from './protobuf.ts';
import { ApiError, badRequest, methodNotAllowed, unsupportedMediaType } from './status.ts';
import {
  apiGroupDoc,
  apiGroupList,
  apiResourceList,
  apiVersions,
  VERSION_INFO,
} from './discovery.ts';
import { openApiV3Document, openApiV3Root } from './openapi.ts';
import { listObjects, makeFilter, parseListQuery } from './list.ts';
import { serveWatch } from './watch-stream.ts';
import { toTable, type IncludeObject } from './tables.ts';

export interface ApiServerOptions {
  etcd: Etcd3;
  /** Unix socket path (reachable from every network namespace). */
  socketPath?: string;
  /** "ip:port" to listen on TCP (inside the caller's network namespace). */
  tcpAddress?: string;
  /** etcd key root; "/registry" as kube-apiserver. */
  prefix?: string;
  /** Service cluster IPs are allocated from this IPv4 CIDR; without it they stay as written. */
  serviceCidr?: string;
}

export interface RunningApiServer {
  readonly socketPath: string | undefined;
  readonly tcpAddress: string | undefined;
  stop(): Promise<void>;
}

interface ResourcePath {
  r: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

const MAX_BODY = 8 * 1024 * 1024;

export async function startApiServer(opts: ApiServerOptions): Promise<RunningApiServer> {
  const store = new ObjectStore(opts.etcd, opts.prefix ?? '/registry');
  const root = opts.prefix ?? '/registry';
  const serviceIps = opts.serviceCidr
    ? new ServiceIpAllocator(opts.serviceCidr, `${root}/ipaddresses`)
    : undefined;
  const service = new ObjectService(store, serviceIps);
  await service.finalizeTerminatingNamespaces();
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    handle(store, service, req, res).catch((err) => sendError(res, err));
  };
  const servers: http.Server[] = [];
  try {
    if (opts.socketPath) {
      await rm(opts.socketPath, { force: true });
      servers.push(await listen(http.createServer(handler), { path: opts.socketPath }));
    }
    if (opts.tcpAddress) {
      const [host, port] = splitHostPort(opts.tcpAddress);
      servers.push(await listen(http.createServer(handler), { host, port }));
    }
  } catch (err) {
    await Promise.all(servers.map(close));
    throw err;
  }
  return {
    socketPath: opts.socketPath,
    tcpAddress: opts.tcpAddress,
    async stop() {
      await Promise.all(servers.map(close));
      if (opts.socketPath) await rm(opts.socketPath, { force: true });
    },
  };
}

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const port = Number(addr.slice(i + 1));
  if (i < 0 || !Number.isInteger(port))
    throw new Error(`listen address "${addr}" must be "host:port"`);
  return [addr.slice(0, i), port];
}

function listen(
  server: http.Server,
  where: { path: string } | { host: string; port: number },
): Promise<http.Server> {
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function handle(
  store: ObjectStore,
  service: ObjectService,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const url = new URL(req.url ?? '/', 'http://apiserver');
  const segs = url.pathname.split('/').filter((s) => s !== '');
  const doc = staticDocument(segs, req);
  if (doc !== undefined) {
    if (doc === null) throw noSuchPath(url.pathname);
    return sendJson(res, 200, doc);
  }
  const path = resourcePath(segs);
  if (!path) throw noSuchPath(url.pathname);
  const q = url.searchParams;
  const dryRun = q.getAll('dryRun').includes('All');
  const { r, namespace, name, subresource } = path;
  if (subresource !== undefined && (subresource !== 'status' || !r.statusSubresource)) {
    throw noSuchPath(url.pathname);
  }
  if (r.namespaced && namespace === undefined && req.method !== 'GET') {
    throw methodNotAllowed(
      `${r.resource} are namespaced: ${req.method ?? ''} needs /namespaces/<namespace>/ in the path`,
    );
  }
  switch (`${req.method} ${name === undefined ? 'collection' : 'item'}`) {
    case 'GET collection':
      return listOrWatch(store, r, namespace, q, req, res);
    case 'POST collection':
      return sendJson(res, 201, await service.create(r, namespace, await readJson(req), dryRun));
    case 'DELETE collection':
      return deleteCollection(store, service, r, namespace, q, res);
    case 'GET item':
      return sendObject(r, await store.get(r, namespace, name!), req, q, res);
    case 'PUT item':
      return sendJson(
        res,
        200,
        await service.replace(r, namespace, name!, await readJson(req), subresource, dryRun),
      );
    case 'PATCH item': {
      const type = patchTypeOf(req.headers['content-type']);
      const body = await readJson(req);
      return sendJson(
        res,
        200,
        await service.patch(r, namespace, name!, type, body, subresource, dryRun),
      );
    }
    case 'DELETE item': {
      const opts = (await readJson(req, true)) as {
        preconditions?: { resourceVersion?: string; uid?: string };
      };
      return sendJson(
        res,
        200,
        await service.delete(r, namespace, name!, opts?.preconditions ?? {}, dryRun),
      );
    }
    default:
      throw methodNotAllowed(
        `the server does not allow this method on the requested resource: ${req.method ?? ''}`,
      );
  }
}

const noSuchPath = (p: string) =>
  new ApiError(404, 'NotFound', `the server could not find the requested resource (${p})`);

/** Discovery, version, OpenAPI and health documents; null for an unknown one of them. */
function staticDocument(segs: string[], req: IncomingMessage): object | null | undefined {
  const p = segs.join('/');
  if (req.method !== 'GET') return undefined;
  if (p === 'version') return VERSION_INFO;
  if (p === 'api') return apiVersions();
  if (p === 'apis') return apiGroupList();
  if (segs[0] === 'api' && segs.length === 2) return apiResourceList('', segs[1]!) ?? null;
  if (segs[0] === 'apis' && segs.length === 2) return apiGroupDoc(segs[1]!) ?? null;
  if (segs[0] === 'apis' && segs.length === 3) return apiResourceList(segs[1]!, segs[2]!) ?? null;
  if (p === 'openapi/v3') return openApiV3Root();
  if (segs[0] === 'openapi' && segs[1] === 'v3') {
    const [kind, a, b] = segs.slice(2);
    return (
      (kind === 'api' && a
        ? openApiV3Document('', a)
        : kind === 'apis' && a && b
          ? openApiV3Document(a, b)
          : null) ?? null
    );
  }
  if (p === 'healthz' || p === 'readyz' || p === 'livez') return { status: 'ok' };
  return undefined;
}

/** /api/v1/... or /apis/<group>/<version>/... into resource, namespace, name, subresource. */
function resourcePath(segs: string[]): ResourcePath | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api' && segs.length >= 3) [group, version, rest] = ['', segs[1]!, segs.slice(2)];
  else if (segs[0] === 'apis' && segs.length >= 4)
    [group, version, rest] = [segs[1]!, segs[2]!, segs.slice(3)];
  else return undefined;
  let namespace: string | undefined;
  if (
    rest[0] === 'namespaces' &&
    rest.length >= 3 &&
    rest[2] !== 'status' &&
    rest[2] !== 'finalize'
  ) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const r = findResource(group, version, rest[0]!);
  if (!r || rest.length > 3) return undefined;
  if (r.namespaced && namespace === undefined && rest.length > 1) return undefined;
  return { r, namespace, name: rest[1], subresource: rest[2] };
}

async function listOrWatch(
  store: ObjectStore,
  r: ResourceType,
  namespace: string | undefined,
  q: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
) {
  const query = parseListQuery(q);
  const table = wantsTable(req);
  if (q.get('watch') === 'true' || q.get('watch') === '1') {
    const render = (o: KubeObject) => (table ? toTable(r, [o], {}, includeObject(q)) : o);
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? '1800') || 1800;
    return serveWatch(
      store,
      {
        r,
        namespace,
        filter: makeFilter(r, query),
        resourceVersion: q.get('resourceVersion') ?? '',
        bookmarks: q.get('allowWatchBookmarks') === 'true',
        timeoutSeconds,
        render,
      },
      res,
    );
  }
  const list = await listObjects(store, r, namespace, query);
  if (table) {
    const meta = {
      resourceVersion: list.resourceVersion,
      ...(list.continueToken ? { continue: list.continueToken } : {}),
    };
    return sendJson(res, 200, toTable(r, list.items, meta, includeObject(q)));
  }
  return sendJson(res, 200, {
    kind: `${r.kind}List`,
    apiVersion: r.group ? `${r.group}/${r.version}` : r.version,
    metadata: {
      resourceVersion: list.resourceVersion,
      ...(list.continueToken ? { continue: list.continueToken } : {}),
    },
    items: list.items,
  });
}

async function deleteCollection(
  store: ObjectStore,
  service: ObjectService,
  r: ResourceType,
  namespace: string | undefined,
  q: URLSearchParams,
  res: ServerResponse,
) {
  const list = await listObjects(store, r, namespace, parseListQuery(q));
  for (const o of list.items) {
    await service.delete(r, o.metadata.namespace, o.metadata.name!, {}, false).catch((err) => {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    });
  }
  sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: 'v1', metadata: {}, items: list.items });
}

function wantsTable(req: IncomingMessage): boolean {
  const accept = req.headers.accept ?? '';
  return accept
    .split(',')
    .some(
      (a) =>
        /as=Table/.test(a) && /v=v1(;|$)/.test(a.replace(/\s/g, '')) && /g=meta\.k8s\.io/.test(a),
    );
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

function sendObject(
  r: ResourceType,
  o: KubeObject,
  req: IncomingMessage,
  q: URLSearchParams,
  res: ServerResponse,
) {
  if (wantsTable(req))
    return sendJson(
      res,
      200,
      toTable(r, [o], { resourceVersion: o.metadata.resourceVersion }, includeObject(q)),
    );
  return sendJson(res, 200, o);
}

async function readJson(req: IncomingMessage, optional = false): Promise<unknown> {
  const type = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim();
  const protobuf = type === 'application/vnd.kubernetes.protobuf';
  if (!protobuf && !type.endsWith('json') && type !== '*/*') throw unsupportedMediaType(type);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY)
      throw new ApiError(413, 'BadRequest', `request body larger than ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  // kubectl's typed clients (kubectl create namespace|configmap|secret|service) send protobuf.
  if (protobuf) return decodeKubernetesProtobuf(Buffer.concat(chunks));
  const text = Buffer.concat(chunks).toString();
  if (text.trim() === '') {
    if (optional) return undefined;
    throw badRequest('the request body is empty; send a JSON object');
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(
      400,
      'BadRequest',
      `the request body is not valid JSON: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
}

function sendJson(res: ServerResponse, code: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown) {
  const apiErr =
    err instanceof ApiError
      ? err
      : new ApiError(
          500,
          'InternalError',
          `internal error: ${String((err as Error)?.message ?? err)}`,
        );
  if (res.headersSent) {
    res.end();
    return;
  }
  sendJson(res, apiErr.code, apiErr.toStatus());
}
