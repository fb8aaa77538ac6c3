// CiliumIdentity objects as Cilium stores them: name = the numeric identity, `security-labels`
// = {"k8s:app": "db", ...}. A metadata label carries a hash of the label set so an allocator
// finds an existing identity for its labels with one label-selector list.
import { createHash } from 'node:crypto';
import type { CiliumIdentity } from '../k8s/resources.ts';
import { labelsToString } from './labels.ts';
import { RESERVED_SOURCE, type SecurityLabels } from './types.ts';

export const LABELS_HASH_LABEL = 'isthmus.io/security-labels-hash';

/** 48 hex digits of SHA-256 over the kvstore label string: a valid label value (<= 63). */
export function labelsHash(labels: SecurityLabels): string {
  return createHash('sha256').update(labelsToString(labels)).digest('hex').slice(0, 48);
}

export function identityObject(id: number, labels: SecurityLabels): CiliumIdentity {
  const security: Record<string, string> = {};
  for (const [k, v] of [...labels].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    security[k.startsWith(RESERVED_SOURCE) ? k : `k8s:${k}`] = v;
  }
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumIdentity',
    metadata: { name: String(id), labels: { [LABELS_HASH_LABEL]: labelsHash(labels) } },
    'security-labels': security,
  };
}

export function identityLabels(obj: CiliumIdentity): SecurityLabels {
  const labels = new Map<string, string>();
  for (const [k, v] of Object.entries(obj['security-labels'] ?? {})) {
    labels.set(k.startsWith('k8s:') ? k.slice(4) : k, v);
  }
  return labels;
}

/** The numeric identity an object names, or undefined for a name that is not one. */
export function identityId(obj: CiliumIdentity): number | undefined {
  const n = Number(obj.metadata.name);
  return Number.isInteger(n) && n > 0 && String(n) === obj.metadata.name ? n : undefined;
}

export function sameLabels(obj: CiliumIdentity, labels: SecurityLabels): boolean {
  return labelsToString(identityLabels(obj)) === labelsToString(labels);
}

/**
 * Of several identities for one label set, the one created first (lowest creation revision;
 * identity objects are never modified, so resourceVersion is the creation revision) wins. The
 * oldest, not the lowest id: whoever creates later is guaranteed to see the earlier one.
 */
export function oldestFirst(a: CiliumIdentity, b: CiliumIdentity): number {
  const ra = Number(a.metadata.resourceVersion ?? Infinity);
  const rb = Number(b.metadata.resourceVersion ?? Infinity);
  if (ra !== rb) return ra - rb;
  return Number(a.metadata.name) - Number(b.metadata.name);
}
