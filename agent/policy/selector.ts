// Label selectors: validation of the Kubernetes LabelSelector shape, compilation into
// requirements over identity labels, canonical keys (equal selectors share a cache slot) and
// matching.
import type { SecurityLabels } from '../identity/types.ts';
import type { FieldError, Requirement, Selector, SelectorOperator } from './types.ts';

const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];
const NAME_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Label keys may carry a Cilium source (`k8s:`, `any:`); `reserved:` stays part of the key. */
export function normalizeKey(raw: string): string {
  if (raw.startsWith('k8s:')) return raw.slice(4);
  if (raw.startsWith('any:')) return raw.slice(4);
  return raw;
}

function validKey(key: string): boolean {
  const k = key.startsWith('reserved:') ? key.slice(9) : normalizeKey(key);
  const slash = k.lastIndexOf('/');
  const name = slash < 0 ? k : k.slice(slash + 1);
  const prefix = slash < 0 ? '' : k.slice(0, slash);
  if (!NAME_PART.test(name)) return false;
  return prefix === '' || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
}

function validValue(v: unknown): v is string {
  return typeof v === 'string' && v.length <= 63 && LABEL_VALUE.test(v);
}

/** Parses a LabelSelector at `path`; errors are appended, requirements returned. */
export function parseLabelSelector(
  raw: unknown,
  path: string,
  errors: FieldError[],
  keyPrefix = '',
): Requirement[] {
  if (raw === undefined || raw === null) return [];
  if (!isObject(raw)) {
    errors.push({ field: path, type: 'Invalid value', detail: 'must be a label selector object' });
    return [];
  }
  const reqs: Requirement[] = [];
  const { matchLabels, matchExpressions } = raw;
  if (matchLabels !== undefined && matchLabels !== null) {
    if (!isObject(matchLabels)) {
      errors.push({ field: `${path}.matchLabels`, type: 'Invalid value', detail: 'must be a map' });
    } else {
      for (const [key, value] of Object.entries(matchLabels)) {
        const field = `${path}.matchLabels`;
        if (!validKey(key)) {
          errors.push({
            field,
            type: 'Invalid value',
            value: key,
            detail: 'not a valid label key',
          });
        } else if (!validValue(value)) {
          errors.push({ field, type: 'Invalid value', value, detail: 'not a valid label value' });
        } else reqs.push({ key: keyPrefix + normalizeKey(key), operator: 'In', values: [value] });
      }
    }
  }
  if (matchExpressions !== undefined && matchExpressions !== null) {
    if (!Array.isArray(matchExpressions)) {
      errors.push({
        field: `${path}.matchExpressions`,
        type: 'Invalid value',
        detail: 'must be a list',
      });
    } else {
      matchExpressions.forEach((expr, i) => {
        const r = parseExpression(expr, `${path}.matchExpressions[${i}]`, errors);
        if (r) reqs.push({ ...r, key: keyPrefix + r.key });
      });
    }
  }
  return reqs;
}

function parseExpression(
  raw: unknown,
  path: string,
  errors: FieldError[],
): Requirement | undefined {
  if (!isObject(raw)) {
    errors.push({ field: path, type: 'Invalid value', detail: 'must be an object' });
    return undefined;
  }
  const n = errors.length;
  const { key, operator, values } = raw;
  if (typeof key !== 'string' || key === '') {
    errors.push({ field: `${path}.key`, type: 'Required value', detail: '' });
  } else if (!validKey(key)) {
    errors.push({
      field: `${path}.key`,
      type: 'Invalid value',
      value: key,
      detail: 'not a valid label key',
    });
  }
  if (!OPERATORS.includes(operator as SelectorOperator)) {
    errors.push({
      field: `${path}.operator`,
      type: 'Invalid value',
      value: operator,
      detail: 'not a valid selector operator',
    });
  }
  const list = Array.isArray(values) ? values : values === undefined || values === null ? [] : null;
  if (list === null) {
    errors.push({
      field: `${path}.values`,
      type: 'Invalid value',
      detail: 'must be a list of strings',
    });
  } else if ((operator === 'In' || operator === 'NotIn') && list.length === 0) {
    errors.push({
      field: `${path}.values`,
      type: 'Required value',
      detail: "must be specified when `operator` is 'In' or 'NotIn'",
    });
  } else if ((operator === 'Exists' || operator === 'DoesNotExist') && list.length > 0) {
    errors.push({
      field: `${path}.values`,
      type: 'Forbidden',
      detail: "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
    });
  } else {
    list.forEach((v, i) => {
      if (!validValue(v)) {
        errors.push({
          field: `${path}.values[${i}]`,
          type: 'Invalid value',
          value: v,
          detail: 'not a valid label value',
        });
      }
    });
  }
  if (errors.length > n) return undefined;
  return {
    key: normalizeKey(key as string),
    operator: operator as SelectorOperator,
    values: [...(list as string[])].sort(),
  };
}

/** A selector from requirements; the key is canonical so equal selectors compare equal. */
export function makeSelector(requirements: readonly Requirement[]): Selector {
  const reqs = [...requirements].sort((a, b) =>
    a.key === b.key ? a.operator.localeCompare(b.operator) : a.key < b.key ? -1 : 1,
  );
  const key = reqs.map((r) => `${r.key} ${r.operator} ${r.values.join(',')}`).join('&');
  return { key, requirements: reqs };
}

export function matches(selector: Selector, labels: SecurityLabels): boolean {
  for (const r of selector.requirements) {
    const v = labels.get(r.key);
    switch (r.operator) {
      case 'In':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}

/** Whether the requirements constrain `key` positively (matchLabels, In or Exists). */
export function namesKey(reqs: readonly Requirement[], key: string): boolean {
  return reqs.some((r) => r.key === key && (r.operator === 'In' || r.operator === 'Exists'));
}

export function mentionsKey(reqs: readonly Requirement[], key: string): boolean {
  return reqs.some((r) => r.key === key);
}

export function mentionsReserved(reqs: readonly Requirement[]): boolean {
  return reqs.some((r) => r.key.startsWith('reserved:'));
}
