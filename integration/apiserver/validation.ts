// The validation kube-apiserver applies that clients notice: names, labels, required fields.
import type { ResourceType } from './resources.ts';
import type { KubeObject } from './store.ts';
import { invalid, type StatusCause } from './status.ts';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

// Kinds whose names must be DNS-1123 labels rather than subdomains.
const LABEL_NAMED = new Set(['Namespace', 'Service']);

const cause = (field: string, message: string, reason = 'FieldValueInvalid'): StatusCause => ({
  reason,
  message,
  field,
});

function nameCauses(r: ResourceType, name: string | undefined): StatusCause[] {
  if (!name)
    return [
      cause(
        'metadata.name',
        'Required value: name or generateName is required',
        'FieldValueRequired',
      ),
    ];
  const label = LABEL_NAMED.has(r.kind);
  const ok = label
    ? DNS1123_LABEL.test(name) && name.length <= 63
    : DNS1123_SUBDOMAIN.test(name) && name.length <= 253;
  if (ok) return [];
  const what = label ? 'a lowercase RFC 1123 label' : 'a lowercase RFC 1123 subdomain';
  return [
    cause(
      'metadata.name',
      `Invalid value: "${name}": must be ${what}: lowercase alphanumerics, '-' or '.', starting and ending with an alphanumeric`,
    ),
  ];
}

function labelCauses(labels: unknown): StatusCause[] {
  if (labels === undefined) return [];
  if (typeof labels !== 'object' || labels === null)
    return [cause('metadata.labels', 'Invalid value: must be a map')];
  const out: StatusCause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const slash = k.lastIndexOf('/');
    const nameOk = LABEL_NAME.test(k.slice(slash + 1)) && k.length - slash - 1 <= 63;
    const prefixOk = slash < 0 || DNS1123_SUBDOMAIN.test(k.slice(0, slash));
    if (!nameOk || !prefixOk)
      out.push(
        cause('metadata.labels', `Invalid value: "${k}": name part must be a valid label key`),
      );
    if (typeof v !== 'string' || !LABEL_VALUE.test(v) || v.length > 63) {
      out.push(
        cause(
          `metadata.labels`,
          `Invalid value: "${String(v)}": a valid label value must be 63 characters or less, alphanumerics, '-', '_' or '.'`,
        ),
      );
    }
  }
  return out;
}

function specCauses(r: ResourceType, obj: KubeObject): StatusCause[] {
  const spec = obj['spec'] as Record<string, unknown> | undefined;
  switch (r.kind) {
    case 'Pod': {
      const containers = spec?.['containers'];
      if (!Array.isArray(containers) || containers.length === 0) {
        return [cause('spec.containers', 'Required value', 'FieldValueRequired')];
      }
      return containers.flatMap((c: Record<string, unknown>, i) => [
        ...(typeof c?.['name'] === 'string' && DNS1123_LABEL.test(c['name'])
          ? []
          : [
              cause(
                `spec.containers[${i}].name`,
                'Required value: a lowercase RFC 1123 label',
                'FieldValueRequired',
              ),
            ]),
        ...(typeof c?.['image'] === 'string' && c['image'] !== ''
          ? []
          : [cause(`spec.containers[${i}].image`, 'Required value', 'FieldValueRequired')]),
      ]);
    }
    case 'EndpointSlice':
      return typeof obj['addressType'] === 'string'
        ? []
        : [cause('addressType', 'Required value', 'FieldValueRequired')];
    case 'CiliumNetworkPolicy':
    case 'CiliumClusterwideNetworkPolicy':
      return obj['spec'] !== undefined || obj['specs'] !== undefined
        ? []
        : [cause('spec', 'Required value: spec or specs must be set', 'FieldValueRequired')];
    default:
      return [];
  }
}

/** Throws 422 Invalid with every cause found. */
export function validateObject(r: ResourceType, obj: KubeObject): void {
  const causes = [
    ...nameCauses(r, obj.metadata.name),
    ...labelCauses(obj.metadata.labels),
    ...specCauses(r, obj),
  ];
  if (causes.length > 0) throw invalid(r.kind, r.group, obj.metadata.name ?? '', causes);
}
