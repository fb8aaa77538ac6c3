// The three patch types kubectl sends: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
// Kubernetes strategic merge patch (lists merged by merge key, $patch/$retainKeys directives).
import { ApiError } from './status.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const isObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

const patchError = (message: string) => new ApiError(422, 'Invalid', message);

export function mergePatch(target: unknown, patch: unknown): Json {
  if (!isObject(patch)) return clone(patch as Json);
  const out: JsonObject = isObject(target) ? clone(target) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface JsonPatchOp {
  op: string;
  path: string;
  value?: Json;
  from?: string;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw patchError(`JSON patch path "${path}" must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(
  doc: Json,
  segs: string[],
  path: string,
): { parent: JsonObject | Json[]; key: string } {
  let cur: Json = doc;
  for (const s of segs.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(cur)
      ? cur[Number(s)]
      : isObject(cur)
        ? cur[s]
        : undefined;
    if (next === undefined) throw patchError(`JSON patch path "${path}" does not exist`);
    cur = next;
  }
  if (!Array.isArray(cur) && !isObject(cur))
    throw patchError(`JSON patch path "${path}" does not exist`);
  return { parent: cur, key: segs[segs.length - 1]! };
}

function getAt(doc: Json, path: string): Json {
  let cur: Json | undefined = doc;
  for (const s of pointer(path)) {
    cur = Array.isArray(cur) ? cur[Number(s)] : isObject(cur) ? cur[s] : undefined;
    if (cur === undefined) throw patchError(`JSON patch path "${path}" does not exist`);
  }
  return cur;
}

function removeAt(doc: Json, path: string): Json {
  const { parent, key } = parentOf(doc, pointer(path), path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!(i >= 0 && i < parent.length))
      throw patchError(`JSON patch remove: index ${key} out of range`);
    return parent.splice(i, 1)[0]!;
  }
  if (!Object.hasOwn(parent, key)) throw patchError(`JSON patch remove: "${path}" does not exist`);
  const old = parent[key]!;
  delete parent[key];
  return old;
}

function addAt(doc: Json, path: string, value: Json, replace: boolean): Json {
  const segs = pointer(path);
  if (segs.length === 0) return value;
  const { parent, key } = parentOf(doc, segs, path);
  if (Array.isArray(parent)) {
    const i = key === '-' ? parent.length : Number(key);
    if (!(i >= 0 && i <= parent.length)) throw patchError(`JSON patch: index ${key} out of range`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !Object.hasOwn(parent, key))
      throw patchError(`JSON patch replace: "${path}" does not exist`);
    parent[key] = value;
  }
  return doc;
}

export function jsonPatch(target: unknown, ops: unknown): Json {
  if (!Array.isArray(ops)) throw patchError('a JSON patch must be an array of operations');
  let doc = clone(target as Json);
  for (const raw of ops as JsonPatchOp[]) {
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, clone(raw.value ?? null), false);
        break;
      case 'replace':
        doc = addAt(doc, raw.path, clone(raw.value ?? null), true);
        break;
      case 'remove':
        removeAt(doc, raw.path);
        break;
      case 'move':
        doc = addAt(doc, raw.path, removeAt(doc, raw.from ?? ''), false);
        break;
      case 'copy':
        doc = addAt(doc, raw.path, clone(getAt(doc, raw.from ?? '')), false);
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, raw.path)) !== JSON.stringify(raw.value)) {
          throw patchError(`JSON patch test failed at "${raw.path}"`);
        }
        break;
      default:
        throw patchError(`unknown JSON patch op "${raw.op}"`);
    }
  }
  return doc;
}

/**
 * Strategic merge patch. `mergeKeys` maps a field path ("spec.containers[].ports") to the key
 * that identifies list elements; "" marks a list of primitives merged as a set. Lists not named
 * there are replaced whole, as for fields without a patch strategy.
 */
export function strategicMergePatch(
  target: unknown,
  patch: unknown,
  mergeKeys: Record<string, string>,
): Json {
  return smpObject(isObject(target) ? target : {}, isObject(patch) ? patch : {}, '', mergeKeys);
}

function smpObject(
  target: JsonObject,
  patch: JsonObject,
  path: string,
  keys: Record<string, string>,
): JsonObject {
  if (patch['$patch'] === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch['$patch'] === 'delete') return {};
  const out = clone(target);
  const retain = patch['$retainKeys'];
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.includes(x));
      continue;
    }
    const childPath = path ? `${path}.${k}` : k;
    if (v === null) delete out[k];
    else if (isObject(v)) out[k] = smpObject(isObject(out[k]) ? out[k] : {}, v, childPath, keys);
    else if (Array.isArray(v)) out[k] = smpList(out[k], v, childPath, keys);
    else out[k] = v;
  }
  if (Array.isArray(retain)) {
    for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  }
  for (const [k, order] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') && Array.isArray(order)) {
      const field = k.slice('$setElementOrder/'.length);
      out[field] = orderList(out[field], order, keys[path ? `${path}.${field}` : field]);
    }
  }
  return out;
}

function smpList(
  target: Json | undefined,
  patch: Json[],
  path: string,
  keys: Record<string, string>,
): Json {
  const mergeKey = keys[path];
  const cur = Array.isArray(target) ? clone(target) : [];
  if (mergeKey === undefined)
    return clone(patch.filter((e) => !(isObject(e) && e['$patch'] !== undefined)));
  if (mergeKey === '') {
    const out = [...cur];
    for (const v of patch)
      if (!out.some((x) => JSON.stringify(x) === JSON.stringify(v))) out.push(v);
    return out;
  }
  if (patch.some((e) => isObject(e) && e['$patch'] === 'replace')) {
    return clone(patch.filter((e) => !(isObject(e) && e['$patch'] === 'replace')));
  }
  for (const el of patch) {
    if (!isObject(el))
      throw patchError(`strategic merge patch: elements of ${path} must be objects`);
    const idx = cur.findIndex((c) => isObject(c) && c[mergeKey] === el[mergeKey]);
    if (el['$patch'] === 'delete') {
      if (idx >= 0) cur.splice(idx, 1);
    } else if (idx >= 0) {
      cur[idx] = smpObject(cur[idx] as JsonObject, el, `${path}[]`, keys);
    } else {
      cur.push(smpObject({}, el, `${path}[]`, keys));
    }
  }
  return cur;
}

/** Applies $setElementOrder: listed elements first in the given order, the rest after. */
function orderList(list: Json | undefined, order: Json[], mergeKey: string | undefined): Json {
  if (!Array.isArray(list)) return list ?? null;
  const id = (e: Json) =>
    mergeKey && isObject(e) ? JSON.stringify(e[mergeKey]) : JSON.stringify(e);
  const want = order.map(id);
  const rank = (e: Json) => {
    const i = want.indexOf(id(e));
    return i < 0 ? want.length : i;
  };
  return [...list].sort((a, b) => rank(a) - rank(b));
}
