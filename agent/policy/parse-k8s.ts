// networking.k8s.io/v1 NetworkPolicy -> ParsedPolicy, validated the way kube-apiserver does.
// K8s policies are evaluated inside the pod's own cluster: every peer selector is limited to the
// local cluster.
import { CLUSTER_LABEL, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX } from '../identity/types.ts';
import { Protocol } from './entry.ts';
import { PolicyValidationError } from './errors.ts';
import {
  cidrContains,
  parseCidr,
  PROTOCOL_NAMES,
  validPortName,
  validPortNumber,
} from './ports.ts';
import { isObject, makeSelector, parseLabelSelector } from './selector.ts';
import type {
  FieldError,
  ParsedPolicy,
  PeerSpec,
  PolicyRule,
  PortSpec,
  Requirement,
  Result,
} from './types.ts';

const K8S_PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

function localCluster(cluster: string): Requirement {
  return { key: CLUSTER_LABEL, operator: 'In', values: [cluster] };
}

export function parseNetworkPolicy(
  obj: unknown,
  cluster: string,
): Result<ParsedPolicy, PolicyValidationError> {
  const errors: FieldError[] = [];
  const meta = isObject(obj) && isObject(obj.metadata) ? obj.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace =
    typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  if (name === '')
    errors.push({
      field: 'metadata.name',
      type: 'Required value',
      detail: 'name or generateName is required',
    });
  const spec = isObject(obj) && isObject(obj.spec) ? obj.spec : undefined;
  if (!spec) {
    errors.push({ field: 'spec', type: 'Required value', detail: '' });
    return { ok: false, error: new PolicyValidationError('NetworkPolicy', name, errors) };
  }
  const key = `NetworkPolicy/${namespace}/${name}`;
  const podReqs = parseLabelSelector(spec.podSelector ?? {}, 'spec.podSelector', errors);
  const subject = makeSelector([...podReqs, nsReq(namespace), localCluster(cluster)]);
  const types = policyTypes(spec, errors);
  const rules: PolicyRule[] = [];
  for (const dir of ['ingress', 'egress'] as const) {
    const list = spec[dir];
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) {
      errors.push({
        field: `spec.${dir}`,
        type: 'Invalid value',
        detail: 'must be a list of rules',
      });
      continue;
    }
    list.forEach((raw, i) => {
      const path = `spec.${dir}[${i}]`;
      const rule = isObject(raw) ? raw : {};
      const peersField = dir === 'ingress' ? 'from' : 'to';
      const peers = parsePeers(
        rule[peersField],
        `${path}.${peersField}`,
        namespace,
        cluster,
        errors,
      );
      const ports = parsePorts(rule.ports, `${path}.ports`, errors);
      rules.push({ ref: { policy: key, path }, direction: dir, deny: false, peers, ports });
    });
  }
  if (errors.length > 0)
    return { ok: false, error: new PolicyValidationError('NetworkPolicy', name, errors) };
  const value: ParsedPolicy = {
    key,
    kind: 'NetworkPolicy',
    namespace,
    name,
    subject,
    ingressEnforced: types.has('Ingress'),
    egressEnforced: types.has('Egress'),
    // rules of a direction the policy does not enforce have no effect (upstream semantics)
    rules: rules.filter((r) => types.has(r.direction === 'ingress' ? 'Ingress' : 'Egress')),
  };
  return { ok: true, value };
}

function nsReq(namespace: string): Requirement {
  return { key: NAMESPACE_LABEL, operator: 'In', values: [namespace] };
}

/** Defaulting: Ingress always, Egress when egress rules exist. */
function policyTypes(spec: Record<string, unknown>, errors: FieldError[]): Set<string> {
  const raw = spec.policyTypes;
  if (raw === undefined || raw === null) {
    const t = new Set(['Ingress']);
    if (Array.isArray(spec.egress) && spec.egress.length > 0) t.add('Egress');
    return t;
  }
  const out = new Set<string>();
  if (!Array.isArray(raw)) {
    errors.push({ field: 'spec.policyTypes', type: 'Invalid value', detail: 'must be a list' });
    return out;
  }
  raw.forEach((t, i) => {
    const field = `spec.policyTypes[${i}]`;
    if (t !== 'Ingress' && t !== 'Egress') {
      errors.push({
        field,
        type: 'Unsupported value',
        value: t,
        detail: 'supported values: "Egress", "Ingress"',
      });
    } else if (out.has(t)) errors.push({ field, type: 'Duplicate value', value: t, detail: '' });
    else out.add(t);
  });
  return out;
}

function parsePeers(
  raw: unknown,
  path: string,
  ns: string,
  cluster: string,
  errors: FieldError[],
): PeerSpec[] {
  if (raw === undefined || raw === null) return [{ kind: 'any' }];
  if (!Array.isArray(raw)) {
    errors.push({ field: path, type: 'Invalid value', detail: 'must be a list of peers' });
    return [];
  }
  if (raw.length === 0) return [{ kind: 'any' }];
  const peers: PeerSpec[] = [];
  raw.forEach((p, i) => {
    const field = `${path}[${i}]`;
    const peer = isObject(p) ? p : {};
    const has = (k: string) => peer[k] !== undefined && peer[k] !== null;
    const count = ['podSelector', 'namespaceSelector', 'ipBlock'].filter(has).length;
    if (count === 0) {
      errors.push({ field, type: 'Required value', detail: 'must specify a peer' });
      return;
    }
    if (has('ipBlock')) {
      if (count > 1) {
        errors.push({
          field,
          type: 'Forbidden',
          detail: 'may not specify both ipBlock and another peer',
        });
        return;
      }
      const block = parseIpBlock(peer.ipBlock, `${field}.ipBlock`, errors);
      if (block) peers.push(block);
      return;
    }
    const reqs: Requirement[] = [localCluster(cluster)];
    reqs.push(...parseLabelSelector(peer.podSelector, `${field}.podSelector`, errors));
    if (has('namespaceSelector')) {
      reqs.push(
        ...parseLabelSelector(
          peer.namespaceSelector,
          `${field}.namespaceSelector`,
          errors,
          NAMESPACE_LABELS_PREFIX,
        ),
      );
      reqs.push({ key: NAMESPACE_LABEL, operator: 'Exists', values: [] });
    } else reqs.push(nsReq(ns));
    peers.push({ kind: 'selector', selector: makeSelector(reqs) });
  });
  return peers;
}

export function parseIpBlock(
  raw: unknown,
  path: string,
  errors: FieldError[],
): PeerSpec | undefined {
  const block = isObject(raw) ? raw : {};
  if (block.cidr === undefined || block.cidr === '') {
    errors.push({ field: `${path}.cidr`, type: 'Required value', detail: '' });
    return undefined;
  }
  const cidr = parseCidr(block.cidr);
  if (!cidr) {
    errors.push({
      field: `${path}.cidr`,
      type: 'Invalid value',
      value: block.cidr,
      detail: 'must be a valid CIDR',
    });
    return undefined;
  }
  const except: string[] = [];
  const list = block.except ?? [];
  if (!Array.isArray(list)) {
    errors.push({
      field: `${path}.except`,
      type: 'Invalid value',
      detail: 'must be a list of CIDRs',
    });
    return undefined;
  }
  list.forEach((e, i) => {
    const field = `${path}.except[${i}]`;
    const ex = parseCidr(e);
    if (!ex)
      errors.push({ field, type: 'Invalid value', value: e, detail: 'must be a valid CIDR' });
    else if (!cidrContains(cidr.cidr, ex.cidr) || ex.bits <= cidr.bits) {
      errors.push({
        field,
        type: 'Invalid value',
        value: e,
        detail: 'must be a strict subset of `cidr`',
      });
    } else except.push(ex.cidr);
  });
  return { kind: 'cidr', cidr: cidr.cidr, except };
}

function parsePorts(raw: unknown, path: string, errors: FieldError[]): PortSpec[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    errors.push({ field: path, type: 'Invalid value', detail: 'must be a list of ports' });
    return [];
  }
  const out: PortSpec[] = [];
  raw.forEach((p, i) => {
    const field = `${path}[${i}]`;
    const port = isObject(p) ? p : {};
    const protoName = port.protocol ?? 'TCP';
    if (!K8S_PROTOCOLS.includes(protoName as string)) {
      errors.push({
        field: `${field}.protocol`,
        type: 'Unsupported value',
        value: protoName,
        detail: 'supported values: "SCTP", "TCP", "UDP"',
      });
      return;
    }
    const protocol = PROTOCOL_NAMES[protoName as string] ?? Protocol.TCP;
    const spec = parsePortValue(port.port, port.endPort, field, protocol, errors);
    if (spec) out.push(spec);
  });
  return out;
}

/** port (number, name or absent) with optional endPort, validated. */
export function parsePortValue(
  portRaw: unknown,
  endRaw: unknown,
  field: string,
  protocol: (typeof Protocol)[keyof typeof Protocol],
  errors: FieldError[],
): PortSpec | undefined {
  const hasEnd = endRaw !== undefined && endRaw !== null;
  if (portRaw === undefined || portRaw === null || portRaw === '') {
    if (hasEnd)
      errors.push({
        field: `${field}.endPort`,
        type: 'Required value',
        detail: 'may not be specified when `port` is not specified',
      });
    return hasEnd ? undefined : { kind: 'range', protocol, from: 0, to: 65535 };
  }
  if (typeof portRaw === 'string' && !/^\d+$/.test(portRaw)) {
    if (!validPortName(portRaw)) {
      errors.push({
        field: `${field}.port`,
        type: 'Invalid value',
        value: portRaw,
        detail:
          'must be a valid IANA_SVC_NAME (lower-case letters, digits and "-", 1-15 characters, at least one letter)',
      });
      return undefined;
    }
    if (hasEnd) {
      errors.push({
        field: `${field}.endPort`,
        type: 'Invalid value',
        value: endRaw,
        detail: 'may not be specified when `port` is non-numeric',
      });
      return undefined;
    }
    return { kind: 'named', protocol, name: portRaw };
  }
  const port = typeof portRaw === 'string' ? Number(portRaw) : portRaw;
  if (!validPortNumber(port)) {
    errors.push({
      field: `${field}.port`,
      type: 'Invalid value',
      value: portRaw,
      detail: 'must be between 1 and 65535, inclusive',
    });
    return undefined;
  }
  if (!hasEnd) return { kind: 'range', protocol, from: port, to: port };
  if (!validPortNumber(endRaw)) {
    errors.push({
      field: `${field}.endPort`,
      type: 'Invalid value',
      value: endRaw,
      detail: 'must be between 1 and 65535, inclusive',
    });
    return undefined;
  }
  if (endRaw < port) {
    errors.push({
      field: `${field}.endPort`,
      type: 'Invalid value',
      value: endRaw,
      detail: 'must be greater than or equal to `port`',
    });
    return undefined;
  }
  return { kind: 'range', protocol, from: port, to: endRaw };
}
