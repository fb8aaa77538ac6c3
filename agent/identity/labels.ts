// Security labels of pods and reserved identities, and their wire form in the kvstore.
import { encodeLabels } from '../../clustermesh/kvstore/labels.ts';
import type { Label } from '../../clustermesh/kvstore/types.ts';
import {
  CLUSTER_LABEL,
  NAMESPACE_LABEL,
  NAMESPACE_LABELS_PREFIX,
  RESERVED_SOURCE,
  ReservedIdentity,
  SERVICE_ACCOUNT_LABEL,
  type ReservedName,
  type SecurityLabels,
} from './types.ts';

export interface PodLabelInput {
  cluster: string;
  namespace: string;
  serviceAccount?: string;
  podLabels: Readonly<Record<string, string>>;
  namespaceLabels: Readonly<Record<string, string>>;
}

/** The security labels DESIGN.md defines for a pod. */
export function podSecurityLabels(input: PodLabelInput): SecurityLabels {
  const labels = new Map<string, string>();
  for (const [k, v] of Object.entries(input.podLabels)) labels.set(k, v);
  for (const [k, v] of Object.entries(input.namespaceLabels)) {
    labels.set(NAMESPACE_LABELS_PREFIX + k, v);
  }
  labels.set(NAMESPACE_LABEL, input.namespace);
  labels.set(SERVICE_ACCOUNT_LABEL, input.serviceAccount ?? 'default');
  labels.set(CLUSTER_LABEL, input.cluster);
  return labels;
}

export function reservedLabels(name: ReservedName): SecurityLabels {
  return new Map([[RESERVED_SOURCE + name, '']]);
}

/** Every reserved identity with its labels. */
export function reservedIdentities(): { id: number; labels: SecurityLabels }[] {
  return (Object.keys(ReservedIdentity) as ReservedName[]).map((name) => ({
    id: ReservedIdentity[name],
    labels: reservedLabels(name),
  }));
}

/** Our label map as kvstore labels: `reserved:` keys keep their source, the rest are `k8s`. */
export function labelList(labels: SecurityLabels): Label[] {
  return [...labels].map(([k, value]) =>
    k.startsWith(RESERVED_SOURCE)
      ? { source: RESERVED_SOURCE.slice(0, -1), key: k.slice(RESERVED_SOURCE.length), value }
      : { source: 'k8s', key: k, value },
  );
}

/**
 * Kvstore form, exactly clustermesh's `encodeLabels` (Cilium's: `source:key=value;` sorted by
 * key), e.g. `k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c2;`. Throws LabelFormatError for
 * labels that cannot be written unambiguously (a `;` in a value).
 */
export function labelsToString(labels: SecurityLabels): string {
  return encodeLabels(labelList(labels));
}

export function labelsFromString(text: string): SecurityLabels {
  const labels = new Map<string, string>();
  for (const item of text.split(';')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const full = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    const key = full.startsWith('k8s:') ? full.slice(4) : full;
    labels.set(key, value);
  }
  return labels;
}
