// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy (L3/L4) -> ParsedPolicy.
// Peer selectors without the cluster label select the local cluster only; a namespaced policy's
// selectors without a namespace label select the policy's namespace.
import { CLUSTER_LABEL, NAMESPACE_LABEL, RESERVED_SOURCE } from '../identity/types.ts';
import { Protocol } from './entry.ts';
import { PolicyValidationError } from './errors.ts';
import { parseIpBlock, parsePortValue } from './parse-k8s.ts';
import { PROTOCOL_NAMES } from './ports.ts';
import {
  isObject,
  makeSelector,
  mentionsKey,
  mentionsReserved,
  namesKey,
  parseLabelSelector,
} from './selector.ts';
import type {
  FieldError,
  ParsedPolicy,
  PeerSpec,
  PolicyKind,
  PolicyRule,
  PortSpec,
  Requirement,
  Result,
} from './types.ts';

export const ENTITIES = [
  'world',
  'cluster',
  'host',
  'remote-node',
  'all',
  'health',
  'init',
  'unmanaged',
  'kube-apiserver',
] as const;
const CLUSTER_RESERVED = ['host', 'remote-node', 'health', 'init', 'unmanaged', 'kube-apiserver'];

interface Scope {
  namespace?: string;
  cluster: string;
}

const SECTIONS = [
  { field: 'ingress', direction: 'ingress', deny: false, peer: 'from' },
  { field: 'ingressDeny', direction: 'ingress', deny: true, peer: 'from' },
  { field: 'egress', direction: 'egress', deny: false, peer: 'to' },
  { field: 'egressDeny', direction: 'egress', deny: true, peer: 'to' },
] as const;

/** Parses a CNP or CCNP; one object may carry `spec` and/or `specs`, each becoming one policy. */
export function parseCiliumPolicy(
  obj: unknown,
  kind: PolicyKind,
  cluster: string,
): Result<ParsedPolicy[], PolicyValidationError> {
  const errors: FieldError[] = [];
  const meta = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  if (name === '')
    errors.push({
      field: 'metadata.name',
      type: 'Required value',
      detail: 'name or generateName is required',
    });
  const clusterwide = kind === 'CiliumClusterwideNetworkPolicy';
  const namespace = clusterwide
    ? undefined
    : typeof meta.namespace === 'string' && meta.namespace
      ? meta.namespace
      : 'default';
  const body = isObject(obj) ? obj : {};
  const specs: [unknown, string][] = [];
  if (body.spec !== undefined && body.spec !== null) specs.push([body.spec, 'spec']);
  if (Array.isArray(body.specs)) body.specs.forEach((s, i) => specs.push([s, `specs[${i}]`]));
  if (specs.length === 0)
    errors.push({
      field: 'spec',
      type: 'Required value',
      detail: 'a policy needs `spec` or `specs`',
    });
  const base = clusterwide ? `${kind}/${name}` : `${kind}/${namespace}/${name}`;
  const scope: Scope = { namespace, cluster };
  const out = specs.map(([spec, path]) =>
    parseSpec(spec, path, specs.length > 1 ? `${base}#${path}` : base, kind, name, scope, errors),
  );
  if (errors.length > 0) return { ok: false, error: new PolicyValidationError(kind, name, errors) };
  return { ok: true, value: out };
}

function parseSpec(
  raw: unknown,
  path: string,
  key: string,
  kind: PolicyKind,
  name: string,
  scope: Scope,
  errors: FieldError[],
): ParsedPolicy {
  const spec = isObject(raw) ? raw : {};
  rejectUnsupported(spec, SPEC_FIELDS, path, errors);
  if (spec.endpointSelector === undefined || spec.endpointSelector === null) {
    errors.push({
      field: `${path}.endpointSelector`,
      type: 'Required value',
      detail: 'a rule must select the endpoints it applies to',
    });
  }
  const subjectReqs = parseLabelSelector(spec.endpointSelector, `${path}.endpointSelector`, errors);
  subjectReqs.push({ key: CLUSTER_LABEL, operator: 'In', values: [scope.cluster] });
  if (scope.namespace !== undefined)
    subjectReqs.push({ key: NAMESPACE_LABEL, operator: 'In', values: [scope.namespace] });
  const rules: PolicyRule[] = [];
  const enforced = { ingress: false, egress: false };
  for (const section of SECTIONS) {
    const list = spec[section.field];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      errors.push({
        field: `${path}.${section.field}`,
        type: 'Invalid value',
        detail: 'must be a list of rules',
      });
      continue;
    }
    if (list.length > 0) enforced[section.direction] = true;
    list.forEach((r, i) => {
      const rpath = `${path}.${section.field}[${i}]`;
      const rule = isObject(r) ? r : {};
      rejectUnsupported(rule, RULE_FIELDS[section.peer], rpath, errors);
      const peers = parseRulePeers(rule, section.peer, rpath, scope, errors);
      const ports = parseToPorts(rule.toPorts, `${rpath}.toPorts`, errors);
      rules.push({
        ref: { policy: key, path: rpath },
        direction: section.direction,
        deny: section.deny,
        peers,
        ports,
      });
    });
  }
  return {
    key,
    kind,
    namespace: scope.namespace,
    name,
    subject: makeSelector(subjectReqs),
    ingressEnforced: enforced.ingress && defaultDeny(spec, 'ingress', path, errors),
    egressEnforced: enforced.egress && defaultDeny(spec, 'egress', path, errors),
    rules,
  };
}

// Fields this engine enforces. Anything else (L7 rules, FQDNs, services, nodes, ICMP, ...) is
// refused rather than ignored: ignoring `toFQDNs` next to `toPorts` would open the port to all.
const SPEC_FIELDS = [
  'endpointSelector',
  'ingress',
  'ingressDeny',
  'egress',
  'egressDeny',
  'enableDefaultDeny',
  'description',
  'labels',
];
const RULE_FIELDS = {
  from: ['fromEndpoints', 'fromCIDR', 'fromCIDRSet', 'fromEntities', 'toPorts'],
  to: ['toEndpoints', 'toCIDR', 'toCIDRSet', 'toEntities', 'toPorts'],
};

function rejectUnsupported(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  path: string,
  errors: FieldError[],
): void {
  for (const key of Object.keys(obj)) {
    if (allowed.includes(key) || obj[key] === undefined || obj[key] === null) continue;
    errors.push({
      field: `${path}.${key}`,
      type: 'Forbidden',
      detail: `not supported: Isthmus enforces L3/L4 fields only (${allowed.join(', ')})`,
    });
  }
}

/** `enableDefaultDeny.<dir>: false` makes a policy add allows without isolating the endpoint. */
function defaultDeny(
  spec: Record<string, unknown>,
  dir: 'ingress' | 'egress',
  path: string,
  errors: FieldError[],
): boolean {
  const edd = spec.enableDefaultDeny;
  if (edd === undefined || edd === null) return true;
  const v = isObject(edd) ? edd[dir] : undefined;
  if (v === undefined || v === null) return true;
  if (typeof v !== 'boolean') {
    errors.push({
      field: `${path}.enableDefaultDeny.${dir}`,
      type: 'Invalid value',
      value: v,
      detail: 'must be true or false',
    });
    return true;
  }
  return v;
}

function parseRulePeers(
  rule: Record<string, unknown>,
  dir: 'from' | 'to',
  path: string,
  scope: Scope,
  errors: FieldError[],
): PeerSpec[] {
  const peers: PeerSpec[] = [];
  let l3 = false;
  const list = (field: string): unknown[] | undefined => {
    const v = rule[field];
    if (v === undefined || v === null) return undefined;
    l3 = true;
    if (Array.isArray(v)) return v;
    errors.push({ field: `${path}.${field}`, type: 'Invalid value', detail: 'must be a list' });
    return undefined;
  };
  list(`${dir}Endpoints`)?.forEach((sel, i) => {
    const reqs = parseLabelSelector(sel ?? {}, `${path}.${dir}Endpoints[${i}]`, errors);
    peers.push({ kind: 'selector', selector: makeSelector(withDefaults(reqs, scope)) });
  });
  list(`${dir}CIDR`)?.forEach((c, i) => {
    const p = parseIpBlock({ cidr: c }, `${path}.${dir}CIDR[${i}]`, errors);
    if (p) peers.push(p);
  });
  list(`${dir}CIDRSet`)?.forEach((c, i) => {
    const p = parseIpBlock(c, `${path}.${dir}CIDRSet[${i}]`, errors);
    if (p) peers.push(p);
  });
  list(`${dir}Entities`)?.forEach((e, i) => {
    if (!(ENTITIES as readonly unknown[]).includes(e)) {
      errors.push({
        field: `${path}.${dir}Entities[${i}]`,
        type: 'Unsupported value',
        value: e,
        detail: `supported values: ${ENTITIES.map((x) => `"${x}"`).join(', ')}`,
      });
    } else peers.push(...entityPeers(e as string, scope.cluster));
  });
  // toPorts without any L3 field applies to every peer; an empty rule `{}` selects nothing.
  if (!l3 && rule.toPorts !== undefined && rule.toPorts !== null) peers.push({ kind: 'any' });
  return peers;
}

function withDefaults(reqs: Requirement[], scope: Scope): Requirement[] {
  if (mentionsReserved(reqs)) return reqs;
  const out = [...reqs];
  if (!namesKey(reqs, CLUSTER_LABEL))
    out.push({ key: CLUSTER_LABEL, operator: 'In', values: [scope.cluster] });
  if (scope.namespace !== undefined && !mentionsKey(reqs, NAMESPACE_LABEL)) {
    out.push({ key: NAMESPACE_LABEL, operator: 'In', values: [scope.namespace] });
  }
  return out;
}

function reservedPeer(name: string): PeerSpec {
  return {
    kind: 'selector',
    selector: makeSelector([{ key: RESERVED_SOURCE + name, operator: 'Exists', values: [] }]),
  };
}

export function entityPeers(entity: string, cluster: string): PeerSpec[] {
  if (entity === 'all') return [{ kind: 'any' }];
  if (entity !== 'cluster') return [reservedPeer(entity)];
  const pods = makeSelector([{ key: CLUSTER_LABEL, operator: 'In', values: [cluster] }]);
  return [{ kind: 'selector', selector: pods }, ...CLUSTER_RESERVED.map(reservedPeer)];
}

function parseToPorts(raw: unknown, path: string, errors: FieldError[]): PortSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    errors.push({ field: path, type: 'Invalid value', detail: 'must be a list' });
    return [];
  }
  const out: PortSpec[] = [];
  raw.forEach((pr, i) => {
    if (isObject(pr)) rejectUnsupported(pr, ['ports'], `${path}[${i}]`, errors);
    const ports = isObject(pr) ? pr.ports : undefined;
    if (!Array.isArray(ports)) {
      errors.push({
        field: `${path}[${i}].ports`,
        type: 'Required value',
        detail: 'list the ports this rule allows',
      });
      return;
    }
    ports.forEach((p, j) => {
      const field = `${path}[${i}].ports[${j}]`;
      const port = isObject(p) ? p : {};
      const protoName = port.protocol ?? 'ANY';
      const protocol = PROTOCOL_NAMES[protoName as string];
      if (protocol === undefined) {
        errors.push({
          field: `${field}.protocol`,
          type: 'Unsupported value',
          value: protoName,
          detail: 'supported values: "ANY", "SCTP", "TCP", "UDP"',
        });
        return;
      }
      const spec = parsePortValue(port.port, port.endPort, field, protocol ?? Protocol.ANY, errors);
      if (spec) out.push(spec);
    });
  });
  return out;
}
