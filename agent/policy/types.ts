// The engine's normalized policy model: what NetworkPolicy, CiliumNetworkPolicy and
// CiliumClusterwideNetworkPolicy parse into. Imports nothing from sibling folders except the
// fixed datapath contract.
import type { Direction, ProtocolNumber } from './entry.ts';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

/** One requirement on identity labels (keys without source; `reserved:` keys keep it). */
export interface Requirement {
  key: string;
  operator: SelectorOperator;
  values: readonly string[];
}

/** A compiled identity selector: all requirements must hold. `key` is canonical. */
export interface Selector {
  key: string;
  requirements: readonly Requirement[];
}

/** Where a rule's peers come from. */
export type PeerSpec =
  | { kind: 'selector'; selector: Selector }
  | { kind: 'any' }
  | { kind: 'cidr'; cidr: string; except: readonly string[] };

/** A port rule: numeric range or a named port still to resolve. protocol ANY = all protocols. */
export type PortSpec =
  | { kind: 'range'; protocol: ProtocolNumber; from: number; to: number }
  | { kind: 'named'; protocol: ProtocolNumber; name: string };

/** Where a rule comes from, for "why" answers: `NetworkPolicy x/allow-web spec.ingress[0]`. */
export interface RuleRef {
  policy: string;
  path: string;
}

export interface PolicyRule {
  ref: RuleRef;
  direction: Direction;
  deny: boolean;
  peers: readonly PeerSpec[];
  /** empty = every protocol and port */
  ports: readonly PortSpec[];
}

export type PolicyKind = 'NetworkPolicy' | 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy';

export interface ParsedPolicy {
  /** `Kind/namespace/name` (clusterwide: `Kind/name`): unique within a cluster */
  key: string;
  kind: PolicyKind;
  namespace?: string;
  name: string;
  /** which local endpoints the policy applies to */
  subject: Selector;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  rules: readonly PolicyRule[];
}

export interface NamedPort {
  name: string;
  port: number;
  protocol: ProtocolNumber;
}

/** One field problem, kube-apiserver style. */
export interface FieldError {
  field: string;
  type: 'Required value' | 'Invalid value' | 'Unsupported value' | 'Forbidden' | 'Duplicate value';
  detail: string;
  value?: unknown;
}

export type Result<T, E> = { ok: true; value: T } | { ok: false; error: E };
