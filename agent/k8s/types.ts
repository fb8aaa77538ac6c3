// Kubernetes objects as the agent sees them: plain JSON, typed only where the agent reads.
// Imports nothing from sibling folders.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/** What the agent watches: where it lives and how to narrow it (e.g. this node's pods). */
export interface ResourceDef<T extends KubeObject = KubeObject> {
  /** "v1" or "group/version". */
  apiVersion: string;
  kind: string;
  /** Plural, lowercase: the URL segment. */
  plural: string;
  namespaced: boolean;
  fieldSelector?: string;
  labelSelector?: string;
  /** Type marker only; never set. */
  readonly _type?: T;
}

/** Store key: "namespace/name" for namespaced objects, "name" otherwise (as client-go). */
export function objectKey(o: KubeObject): string {
  const ns = o.metadata.namespace;
  return ns ? `${ns}/${o.metadata.name}` : o.metadata.name;
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf('/');
  return i < 0
    ? { namespace: undefined, name: key }
    : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** The collection URL of a resource, optionally within one namespace. */
export function collectionPath(def: ResourceDef, namespace?: string): string {
  const base = def.apiVersion.includes('/') ? `/apis/${def.apiVersion}` : `/api/${def.apiVersion}`;
  const ns = def.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${base}${ns}/${def.plural}`;
}

export function objectPath(def: ResourceDef, name: string, namespace?: string): string {
  return `${collectionPath(def, namespace)}/${encodeURIComponent(name)}`;
}

export type K8sErrorCode =
  | 'K8S_NOT_FOUND'
  | 'K8S_CONFLICT'
  | 'K8S_ALREADY_EXISTS'
  | 'K8S_GONE'
  | 'K8S_INVALID'
  | 'K8S_UNAVAILABLE'
  | 'K8S_REQUEST_FAILED';

/** A failed API call, with kube-apiserver's status code and reason kept. */
export class K8sError extends Error {
  constructor(
    readonly code: K8sErrorCode,
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'K8sError';
  }
}

export function isK8sError(err: unknown, code: K8sErrorCode): err is K8sError {
  return err instanceof K8sError && err.code === code;
}

/** Maps an HTTP status and Status.reason to our stable codes. */
export function codeForStatus(status: number, reason?: string): K8sErrorCode {
  if (status === 404) return 'K8S_NOT_FOUND';
  if (status === 409) return reason === 'AlreadyExists' ? 'K8S_ALREADY_EXISTS' : 'K8S_CONFLICT';
  if (status === 410) return 'K8S_GONE';
  if (status === 422 || status === 400) return 'K8S_INVALID';
  if (status === 0 || status >= 500) return 'K8S_UNAVAILABLE';
  return 'K8S_REQUEST_FAILED';
}

export interface ListResult<T extends KubeObject> {
  items: T[];
  resourceVersion: string;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchHandle {
  /** Ends the stream; `onDone` is then called once. */
  abort(): void;
}

/**
 * The slice of the Kubernetes API the agent uses; `KubeClient` talks to a real server, tests of
 * control-plane logic may supply a fake.
 */
export interface KubeApi {
  list<T extends KubeObject>(
    def: ResourceDef<T>,
    opts?: { namespace?: string; labelSelector?: string; fieldSelector?: string },
  ): Promise<ListResult<T>>;
  get<T extends KubeObject>(def: ResourceDef<T>, name: string, namespace?: string): Promise<T>;
  create<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T>;
  /** Replaces; a resourceVersion in `obj` is a precondition (409 K8S_CONFLICT when stale). */
  replace<T extends KubeObject>(def: ResourceDef<T>, obj: T): Promise<T>;
  delete(
    def: ResourceDef,
    name: string,
    namespace?: string,
    preconditions?: { uid?: string; resourceVersion?: string },
  ): Promise<void>;
  watch(
    def: ResourceDef,
    opts: { resourceVersion: string; timeoutSeconds?: number },
    onEvent: (type: WatchEventType, object: any) => void,
    onDone: (err: unknown) => void,
  ): Promise<WatchHandle>;
}
