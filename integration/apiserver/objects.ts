// Create/update/patch/delete semantics on top of the store: metadata kube-apiserver owns,
// resourceVersion preconditions, the status subresource, namespace lifecycle.
import { randomBytes, randomUUID } from 'node:crypto';
import { RESOURCES, apiVersionOf, namespaceResource, type ResourceType } from './resources.ts';
import { ClaimTakenError, ObjectStore, type KubeObject } from './store.ts';
import type { ServiceIpAllocator } from './service-ips.ts';
import {
  ApiError,
  badRequest,
  conflict,
  forbidden,
  invalid,
  unsupportedMediaType,
} from './status.ts';
import { validateObject } from './validation.ts';
import { applyDefaults } from './defaults.ts';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';

export type PatchType = 'json' | 'merge' | 'strategic';

export function patchTypeOf(contentType: string | undefined): PatchType {
  const t = (contentType ?? '').split(';')[0]!.trim();
  if (t === 'application/json-patch+json') return 'json';
  if (t === 'application/merge-patch+json') return 'merge';
  if (t === 'application/strategic-merge-patch+json') return 'strategic';
  throw unsupportedMediaType(t);
}

const NAMESPACE_GRACE_MS = 300;
const nowRfc3339 = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const specOf = (o: KubeObject) => {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
};

export class ObjectService {
  constructor(
    readonly store: ObjectStore,
    private readonly serviceIps?: ServiceIpAllocator,
  ) {}

  async create(
    r: ResourceType,
    namespace: string | undefined,
    body: unknown,
    dryRun: boolean,
  ): Promise<KubeObject> {
    const obj = this.checkBody(r, namespace, body);
    const meta = obj.metadata;
    if (!meta.name && meta.generateName)
      meta.name = meta.generateName + randomBytes(3).toString('hex').slice(0, 5);
    applyDefaults(obj);
    validateObject(r, obj);
    if (r.namespaced) await this.requireNamespace(namespace!);
    const { resourceVersion: _rv, deletionTimestamp: _d, ...rest } = meta;
    obj.metadata = {
      ...rest,
      ...(r.namespaced ? { namespace } : {}),
      uid: randomUUID(),
      creationTimestamp: nowRfc3339(),
      generation: 1,
    };
    resetStatusOnCreate(r, obj);
    if (dryRun) return obj;
    if (r.kind === 'Service' && this.serviceIps?.wantsIp(obj))
      return this.createService(r, namespace, obj, this.serviceIps);
    return this.store.create(r, namespace, obj);
  }

  /** Claims the requested cluster IP, or the first free one, with the Service in one transaction. */
  private async createService(
    r: ResourceType,
    namespace: string | undefined,
    obj: KubeObject,
    ips: ServiceIpAllocator,
  ): Promise<KubeObject> {
    const requested = Boolean((obj['spec'] as Record<string, unknown>)['clusterIP']);
    for (const ip of ips.candidates(obj)) {
      const candidate = structuredClone(obj);
      ips.assign(candidate, ip);
      try {
        return await this.store.create(r, namespace, candidate, [ips.claimKey(ip)]);
      } catch (err) {
        if (!(err instanceof ClaimTakenError)) throw err;
        if (requested) {
          throw invalid('Service', '', obj.metadata.name ?? '', [
            {
              reason: 'FieldValueInvalid',
              field: 'spec.clusterIP',
              message: `Invalid value: "${ip}": provided IP is already allocated`,
            },
          ]);
        }
      }
    }
    throw new ApiError(
      500,
      'InternalError',
      `failed to allocate a service IP: range ${ips.cidr} is full`,
    );
  }

  /** PUT of the main resource or of its status subresource. */
  async replace(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    subresource: string | undefined,
    dryRun: boolean,
  ): Promise<KubeObject> {
    const incoming = this.checkBody(r, namespace, body);
    if (incoming.metadata.name !== name) {
      throw badRequest(
        `the name of the object (${incoming.metadata.name ?? ''}) does not match the name on the URL (${name})`,
      );
    }
    return this.guardedUpdate(r, namespace, name, dryRun, (cur) => {
      checkPrecondition(r, name, incoming.metadata.resourceVersion, cur);
      return this.merged(r, cur, incoming, subresource);
    });
  }

  async patch(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    patch: unknown,
    subresource: string | undefined,
    dryRun: boolean,
  ): Promise<KubeObject> {
    if (type === 'strategic' && r.custom)
      throw unsupportedMediaType('application/strategic-merge-patch+json');
    return this.guardedUpdate(r, namespace, name, dryRun, (cur) => {
      const patched = applyPatch(r, cur, type, patch) as KubeObject;
      if (typeof patched !== 'object' || patched === null || typeof patched.metadata !== 'object') {
        throw badRequest('the patch removed the object metadata');
      }
      checkPrecondition(r, name, patched.metadata.resourceVersion, cur);
      if (patched.metadata.name !== name)
        throw badRequest('metadata.name cannot be changed by a patch');
      return this.merged(r, cur, patched, subresource);
    });
  }

  private async guardedUpdate(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    dryRun: boolean,
    mutate: (cur: KubeObject) => KubeObject,
  ): Promise<KubeObject> {
    if (dryRun) {
      const cur = await this.store.get(r, namespace, name);
      const next = mutate(cur);
      return {
        ...next,
        metadata: { ...next.metadata, resourceVersion: cur.metadata.resourceVersion },
      };
    }
    return this.store.update(r, namespace, name, mutate);
  }

  /** The next stored state: owned metadata kept, status or spec taken per subresource. */
  private merged(
    r: ResourceType,
    cur: KubeObject,
    incoming: KubeObject,
    subresource: string | undefined,
  ): KubeObject {
    let next: KubeObject;
    if (subresource === 'status') next = { ...cur, status: incoming['status'] } as KubeObject;
    else {
      next = { ...incoming, apiVersion: apiVersionOf(r), kind: r.kind };
      if (r.statusSubresource) next['status'] = cur['status'];
      if (next['status'] === undefined) delete next['status'];
    }
    const { resourceVersion: _rv, ...incomingMeta } =
      subresource === 'status' ? cur.metadata : incoming.metadata;
    next.metadata = {
      ...incomingMeta,
      name: cur.metadata.name,
      ...(cur.metadata.namespace !== undefined ? { namespace: cur.metadata.namespace } : {}),
      uid: cur.metadata.uid,
      creationTimestamp: cur.metadata.creationTimestamp,
      generation: (cur.metadata.generation ?? 1) + (specOf(next) !== specOf(cur) ? 1 : 0),
    };
    applyDefaults(next);
    if (r.kind === 'Service' && subresource !== 'status') keepClusterIp(cur, next);
    validateObject(r, next);
    return next;
  }

  async delete(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    options: { resourceVersion?: string; uid?: string },
    dryRun: boolean,
  ): Promise<KubeObject> {
    const check = (cur: KubeObject) => {
      if (options.uid && options.uid !== cur.metadata.uid) {
        throw conflict(
          r,
          name,
          `Precondition failed: UID in precondition: ${options.uid}, UID in object meta: ${cur.metadata.uid ?? ''}`,
        );
      }
      if (options.resourceVersion && options.resourceVersion !== cur.metadata.resourceVersion) {
        throw conflict(
          r,
          name,
          'the object has been modified; please apply your changes to the latest version and try again',
        );
      }
    };
    if (dryRun) {
      const cur = await this.store.get(r, namespace, name);
      check(cur);
      return cur;
    }
    if (r.kind === 'Namespace') return this.terminateNamespace(name, check);
    return this.store.delete(r, namespace, name, check, (o) => this.claimsOf(r, o));
  }

  /**
   * As kube-apiserver: the namespace turns Terminating at once and is removed with everything
   * in it shortly after, so deletes of its objects that follow (kubectl delete -f) still succeed.
   */
  private async terminateNamespace(
    name: string,
    check: (cur: KubeObject) => void,
  ): Promise<KubeObject> {
    const r = namespaceResource();
    const marked = await this.store.update(r, undefined, name, (cur) => {
      check(cur);
      return {
        ...cur,
        metadata: {
          ...cur.metadata,
          deletionTimestamp: cur.metadata.deletionTimestamp ?? nowRfc3339(),
        },
        status: { ...(cur['status'] as object), phase: 'Terminating' },
      };
    });
    const timer = setTimeout(
      () => void this.finalizeNamespace(name).catch(() => undefined),
      NAMESPACE_GRACE_MS,
    );
    timer.unref();
    return marked;
  }

  /** Removes a terminating namespace's contents, then the namespace; also run at start-up. */
  async finalizeNamespace(name: string): Promise<void> {
    for (const r of RESOURCES.filter((x) => x.namespaced)) {
      if (r.kind !== 'Service') await this.store.deleteCollection(r, name);
      else await this.deleteEach(r, name);
    }
    await this.store.delete(namespaceResource(), undefined, name).catch((err) => {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    });
  }

  /** Deletes one by one, releasing what each object claimed. */
  private async deleteEach(r: ResourceType, namespace: string): Promise<void> {
    const all = await this.store.list(r, namespace, { filter: () => true });
    for (const o of all.items) {
      await this.store
        .delete(r, namespace, o.metadata.name!, undefined, (cur) => this.claimsOf(r, cur))
        .catch((err) => {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        });
    }
  }

  private claimsOf(r: ResourceType, o: KubeObject): string[] {
    return r.kind === 'Service' && this.serviceIps ? this.serviceIps.claimsOf(o) : [];
  }

  /** Finishes deletions of namespaces that were terminating when the server stopped. */
  async finalizeTerminatingNamespaces(): Promise<void> {
    const all = await this.store.list(namespaceResource(), undefined, {
      filter: (o) => !!o.metadata.deletionTimestamp,
    });
    for (const ns of all.items) await this.finalizeNamespace(ns.metadata.name!);
  }

  private async requireNamespace(namespace: string): Promise<void> {
    const ns = await this.store.get(namespaceResource(), undefined, namespace);
    if (ns.metadata.deletionTimestamp) {
      throw forbidden(
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
    }
  }

  private checkBody(r: ResourceType, namespace: string | undefined, body: unknown): KubeObject {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest('the request body must be a JSON object');
    }
    const obj = structuredClone(body) as KubeObject;
    if (obj['kind'] !== undefined && obj['kind'] !== r.kind) {
      throw badRequest(
        `the kind "${String(obj['kind'])}" in the body does not match the URL (${r.kind})`,
      );
    }
    if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== apiVersionOf(r)) {
      throw badRequest(
        `the apiVersion "${String(obj['apiVersion'])}" in the body does not match the URL (${apiVersionOf(r)})`,
      );
    }
    obj['apiVersion'] = apiVersionOf(r);
    obj['kind'] = r.kind;
    obj.metadata = typeof obj.metadata === 'object' && obj.metadata !== null ? obj.metadata : {};
    const bodyNs = obj.metadata.namespace;
    if (r.namespaced && bodyNs !== undefined && bodyNs !== '' && bodyNs !== namespace) {
      throw badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    if (!r.namespaced) delete obj.metadata.namespace;
    return obj;
  }
}

function applyPatch(r: ResourceType, cur: KubeObject, type: PatchType, patch: unknown): unknown {
  switch (type) {
    case 'json':
      return jsonPatch(cur, patch);
    case 'merge':
      return mergePatch(cur, patch);
    case 'strategic':
      return strategicMergePatch(cur, patch, r.mergeKeys);
  }
}

function checkPrecondition(
  r: ResourceType,
  name: string,
  wanted: string | undefined,
  cur: KubeObject,
): void {
  if (wanted !== undefined && wanted !== '' && wanted !== cur.metadata.resourceVersion) {
    throw conflict(
      r,
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    );
  }
}

function resetStatusOnCreate(r: ResourceType, obj: KubeObject): void {
  if (r.kind === 'Pod') obj['status'] = { phase: 'Pending' };
  else if (r.kind === 'Namespace') obj['status'] = { phase: 'Active' };
  else if (r.statusSubresource) delete obj['status'];
}

/** The cluster IP is allocated once: kept when an update omits it, immutable otherwise. */
function keepClusterIp(cur: KubeObject, next: KubeObject): void {
  const was = cur['spec'] as Record<string, unknown> | undefined;
  const spec = next['spec'] as Record<string, unknown> | undefined;
  if (!was?.['clusterIP'] || !spec) return;
  if (spec['clusterIP'] === undefined || spec['clusterIP'] === '') {
    spec['clusterIP'] = was['clusterIP'];
    if (was['clusterIPs'] !== undefined) spec['clusterIPs'] = was['clusterIPs'];
    for (const k of ['ipFamilies', 'ipFamilyPolicy']) if (was[k] !== undefined) spec[k] ??= was[k];
  } else if (spec['clusterIP'] !== was['clusterIP']) {
    throw invalid('Service', '', cur.metadata.name ?? '', [
      {
        reason: 'FieldValueInvalid',
        field: 'spec.clusterIP',
        message: `Invalid value: "${String(spec['clusterIP'])}": field is immutable`,
      },
    ]);
  }
}
