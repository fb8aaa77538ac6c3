// Builders for the upstream truth-table cases, after upstream's policies.go helpers.
import { TCP } from './upstream-index.ts';
import type { ConformanceCase, Expectation } from './model.ts';

export const NS = 'kubernetes.io/metadata.name';
export type Obj = Record<string, unknown>;

/** Like upstream's GenNetworkPolicyWithName...: a spec key present adds its policy type. */
export function np(
  name: string,
  podSelector: Obj,
  spec: { ingress?: Obj[]; egress?: Obj[]; policyTypes?: string[] },
  ns = 'x',
): Obj {
  const policyTypes = spec.policyTypes ?? [
    ...(spec.ingress ? ['Ingress'] : []),
    ...(spec.egress ? ['Egress'] : []),
  ];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns },
    spec: {
      podSelector,
      ...(spec.ingress ? { ingress: spec.ingress } : {}),
      ...(spec.egress ? { egress: spec.egress } : {}),
      policyTypes,
    },
  };
}

export const podA = { matchLabels: { pod: 'a' } };
export const all = {};
export const nsIs = (ns: string) => ({ matchLabels: { [NS]: ns } });
export const notX = { matchExpressions: [{ key: NS, operator: 'NotIn', values: ['x'] }] };
export const deny = (from: string, to: string): Expectation => [from, to, false];
export const allow = (from: string, to: string): Expectation => [from, to, true];
export const tcp = (port: number, expect: Expectation[]) => ({
  port,
  protocol: 'TCP' as const,
  expect,
});

export function tc(
  name: string,
  pods: string[],
  ports: number[],
  steps: ConformanceCase['steps'],
  protocols: ConformanceCase['protocols'] = ['TCP'],
): ConformanceCase {
  return { name: `${TCP} ${name}`, pods, ports, protocols, steps };
}

export const yPodA80: Obj = { from: [{ namespaceSelector: nsIs('y'), podSelector: podA }] };
