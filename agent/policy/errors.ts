// Coded errors of the policy engine.
import type { FieldError } from './types.ts';

export type PolicyErrorCode = 'POLICY_INVALID' | 'POLICY_INPUT' | 'POLICY_UNKNOWN_ENDPOINT';

export class PolicyError extends Error {
  constructor(
    readonly code: PolicyErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PolicyError';
  }
}

const GROUPS: Record<string, string> = {
  NetworkPolicy: 'networking.k8s.io',
  CiliumNetworkPolicy: 'cilium.io',
  CiliumClusterwideNetworkPolicy: 'cilium.io',
};

/** A policy rejected as a whole; the message reads like kube-apiserver's. */
export class PolicyValidationError extends PolicyError {
  constructor(
    readonly kind: string,
    readonly objectName: string,
    readonly causes: readonly FieldError[],
  ) {
    super('POLICY_INVALID', formatValidation(kind, objectName, causes));
  }
}

export function formatFieldError(e: FieldError): string {
  const value = e.value === undefined ? '' : ` ${JSON.stringify(e.value)}`;
  const sep = e.detail ? `: ${e.detail}` : '';
  return `${e.field}: ${e.type}${value ? ':' + value : ''}${sep}`;
}

function formatValidation(kind: string, name: string, causes: readonly FieldError[]): string {
  const group = GROUPS[kind] ? `${kind}.${GROUPS[kind]}` : kind;
  const list = causes.map(formatFieldError);
  const body = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
  return `${group} "${name}" is invalid: ${body}`;
}
