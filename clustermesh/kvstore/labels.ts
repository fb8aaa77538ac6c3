// The label-string codec of identity values: each label `source:key=value;` (trailing `;` always),
// sorted, concatenated — Cilium's Label.FormatForKVStore over a sorted LabelArray.
// e.g. `k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c2;k8s:io.kubernetes.pod.namespace=prod;`
import { RejectReason, type Label, type Validated } from './types.ts';

export const CLUSTER_LABEL_KEY = 'io.cilium.k8s.policy.cluster';
export const K8S_SOURCE = 'k8s';

export class LabelFormatError extends Error {
  readonly code = 'ERR_LABEL_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'LabelFormatError';
  }
}

/** Stable order: by key, then source, then value (Cilium sorts a LabelArray by key). */
export function compareLabels(a: Label, b: Label): number {
  return cmp(a.key, b.key) || cmp(a.source, b.source) || cmp(a.value, b.value);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function checkEncodable(l: Label): void {
  if (l.source === '' || /[:;]/.test(l.source)) {
    throw new LabelFormatError(
      `label source ${JSON.stringify(l.source)} must be non-empty without ':' or ';'`,
    );
  }
  if (l.key === '' || /[=;]/.test(l.key)) {
    throw new LabelFormatError(
      `label key ${JSON.stringify(l.key)} must be non-empty without '=' or ';'`,
    );
  }
  if (l.value.includes(';'))
    throw new LabelFormatError(`label value ${JSON.stringify(l.value)} must not contain ';'`);
}

/** Encodes labels in canonical form; duplicates of the same source:key are refused. */
export function encodeLabels(labels: readonly Label[]): string {
  const sorted = [...labels].sort(compareLabels);
  let out = '';
  let previous: Label | undefined;
  for (const l of sorted) {
    checkEncodable(l);
    if (previous && previous.key === l.key && previous.source === l.source) {
      throw new LabelFormatError(
        `label ${l.source}:${l.key} appears twice; a label set has one value per key`,
      );
    }
    out += `${l.source}:${l.key}=${l.value};`;
    previous = l;
  }
  return out;
}

/**
 * Decodes a label string from an untrusted store into canonical (sorted) order. Writers that sort
 * differently are accepted (the label set is what matters); a repeated source:key is refused,
 * as it would make the set ambiguous.
 */
export function decodeLabels(text: string): Validated<Label[]> {
  if (text === '' || !text.endsWith(';')) {
    return bad(
      `label string ${JSON.stringify(text.slice(0, 200))} must be non-empty and end in ';'`,
    );
  }
  const labels: Label[] = [];
  for (const item of text.slice(0, -1).split(';')) {
    const colon = item.indexOf(':');
    const eq = item.indexOf('=', colon + 1);
    if (colon <= 0 || eq <= colon + 1)
      return bad(`label ${JSON.stringify(item)} is not source:key=value`);
    labels.push({
      source: item.slice(0, colon),
      key: item.slice(colon + 1, eq),
      value: item.slice(eq + 1),
    });
  }
  labels.sort(compareLabels);
  for (let i = 1; i < labels.length; i++) {
    const [a, b] = [labels[i - 1]!, labels[i]!];
    if (a.key === b.key && a.source === b.source)
      return bad(`label ${b.source}:${b.key} appears twice`);
  }
  return { ok: true, value: labels };
}

function bad(detail: string): Validated<Label[]> {
  return { ok: false, error: { reason: RejectReason.MalformedValue, detail } };
}

/** The value of `k8s:io.cilium.k8s.policy.cluster`, or undefined when absent. */
export function clusterOfLabels(labels: readonly Label[]): string | undefined {
  return labels.find((l) => l.source === K8S_SOURCE && l.key === CLUSTER_LABEL_KEY)?.value;
}
