// KubeApi over @kubernetes/client-node 1.x: requests go through the KubeConfig's own auth, TLS
// and agent (so a unix-socket KubeConfig works too); bodies stay plain JSON, not model classes.
import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  RequestContext,
  Watch,
  type KubeConfig,
} from '@kubernetes/client-node';
import {
  K8sError,
  codeForStatus,
  collectionPath,
  objectPath,
  type KubeApi,
  type KubeObject,
  type ListResult,
  type ResourceDef,
  type WatchEventType,
  type WatchHandle,
} from './types.ts';

const LIST_PAGE = 500;

export class KubeClient implements KubeApi {
  private readonly http = new IsomorphicFetchHttpLibrary();
  private readonly watcher: Watch;

  constructor(
    private readonly kc: KubeConfig,
    private readonly requestTimeoutMs = 30_000,
  ) {
    this.watcher = new Watch(kc);
  }

  async list<T extends KubeObject>(
    def: ResourceDef<T>,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<ListResult<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const q = new URLSearchParams({ limit: String(LIST_PAGE) });
      const labelSelector = opts.labelSelector ?? def.labelSelector;
      const fieldSelector = opts.fieldSelector ?? def.fieldSelector;
      if (labelSelector) q.set('labelSelector', labelSelector);
      if (fieldSelector) q.set('fieldSelector', fieldSelector);
      if (cont) q.set('continue', cont);
      const page = await this.request('GET', `${collectionPath(def, opts.namespace)}?${q}`);
      for (const item of page.items ?? []) {
        // Lists omit kind/apiVersion on items; restore them so objects look like watch events.
        items.push({ apiVersion: def.apiVersion, kind: def.kind, ...item });
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont);
    return { items, resourceVersion };
  }

  get<T extends KubeObject>(def: ResourceDef<T>, name: string, namespace?: string): Promise<T> {
    return this.request('GET', objectPath(def, name, namespace));
  }

  create<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T> {
    const body = { apiVersion: def.apiVersion, kind: def.kind, ...obj };
    return this.request('POST', collectionPath(def, obj.metadata.namespace), body);
  }

  replace<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T> {
    const body = { apiVersion: def.apiVersion, kind: def.kind, ...obj };
    const p = objectPath(def, obj.metadata.name, obj.metadata.namespace);
    return this.request('PUT', p, body);
  }

  async delete(
    def: ResourceDef,
    name: string,
    namespace?: string,
    preconditions?: { uid?: string; resourceVersion?: string },
  ): Promise<void> {
    const body = preconditions
      ? { apiVersion: 'v1', kind: 'DeleteOptions', preconditions }
      : undefined;
    await this.request('DELETE', objectPath(def, name, namespace), body);
  }

  async watch(
    def: ResourceDef,
    opts: { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (type: WatchEventType, object: any) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle> {
    const query: Record<string, string> = {
      resourceVersion: opts.resourceVersion,
      allowWatchBookmarks: 'true',
    };
    if (opts.timeoutSeconds !== undefined) query['timeoutSeconds'] = String(opts.timeoutSeconds);
    if (def.labelSelector) query['labelSelector'] = def.labelSelector;
    if (def.fieldSelector) query['fieldSelector'] = def.fieldSelector;
    const done = (err: unknown) => {
      const status = (err as { statusCode?: number } | null)?.statusCode;
      if (status !== undefined) {
        onDone(new K8sError(codeForStatus(status), status, `watch ${def.plural}: HTTP ${status}`));
      } else onDone(err);
    };
    const controller = await this.watcher.watch(
      collectionPath(def),
      query,
      (type, object) => onEvent(type as WatchEventType, object),
      done,
    );
    return { abort: () => controller.abort() };
  }

  /** One JSON request; non-2xx answers become K8sError with kube-apiserver's reason. */
  private async request(method: string, path: string, body?: unknown): Promise<any> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) {
      throw new K8sError('K8S_REQUEST_FAILED', 0, 'the kubeconfig has no current cluster: set one');
    }
    const ctx = new RequestContext(cluster.server + path, method as HttpMethod);
    ctx.setHeaderParam('Accept', 'application/json');
    if (body !== undefined) {
      ctx.setHeaderParam('Content-Type', 'application/json');
      ctx.setBody(JSON.stringify(body));
    }
    // A hung server must not hang the caller (a list/watch loop would be dead otherwise).
    ctx.setSignal(AbortSignal.timeout(this.requestTimeoutMs));
    await this.kc.applySecurityAuthentication(ctx);
    let status: number;
    let text: string;
    try {
      const res = await this.http.send(ctx).toPromise();
      status = res.httpStatusCode;
      text = await res.body.text();
    } catch (err) {
      throw new K8sError('K8S_UNAVAILABLE', 0, `${method} ${path}: API server unreachable`, {
        cause: err,
      });
    }
    const parsed = text ? safeJson(text) : undefined;
    if (status >= 200 && status < 300) return parsed;
    const reason = (parsed as { reason?: string } | undefined)?.reason;
    const message = (parsed as { message?: string } | undefined)?.message ?? text;
    throw new K8sError(codeForStatus(status, reason), status, `${method} ${path}: ${message}`);
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
