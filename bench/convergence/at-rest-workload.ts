// The cluster content of the at-rest benchmark: namespaces with team labels, pods spread over
// them with app/tier labels (a bounded number of distinct label sets, hence identities), and
// policies of mixed shapes — NetworkPolicy and CiliumNetworkPolicy, pod and namespace selectors,
// match expressions, ports, named ports, ipBlock/CIDR rules with exceptions.
import { podYaml } from '../../integration/e2e-policy/support.ts';

export const NAMESPACES = ['rest-a', 'rest-b', 'rest-c', 'rest-d', 'rest-e'];
const APPS = 8;
const ports = [
  { port: 80, protocol: 'TCP' as const, name: 'http' },
  { port: 53, protocol: 'UDP' as const, name: 'dns' },
];

export interface PodRef {
  ns: string;
  name: string;
}

/** Pod i: namespace i mod 5, app and tier from i, so 5 x 8 x 2 = 80 label sets at most. */
export function podRefs(count: number): PodRef[] {
  return Array.from({ length: count }, (_, i) => ({
    ns: NAMESPACES[i % NAMESPACES.length]!,
    name: `p${i}`,
  }));
}

const podLabels = (i: number): Record<string, string> => ({
  app: `a${Math.floor(i / NAMESPACES.length) % APPS}`,
  tier: Math.floor(i / (NAMESPACES.length * APPS)) % 2 ? 'be' : 'fe',
});

export function namespacesYaml(): string {
  return NAMESPACES.map(
    (ns, i) =>
      `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${ns}, labels: {team: t${i % 3}}}\n---\n`,
  ).join('');
}

/** Pods [from, to) without a node: the lab kubelet spreads them over the least loaded nodes. */
export function podsYaml(from: number, to: number): string {
  let out = '';
  for (let i = from; i < to; i++)
    out += podYaml(NAMESPACES[i % NAMESPACES.length]!, `p${i}`, podLabels(i), ports);
  return out;
}

const app = (i: number) => `a${i % APPS}`;
const net = (i: number) => `${100 + (i % 100)}.${Math.floor(i / 100)}`;

/** Policy i of 8 shapes, in namespace i mod 5. */
export function policyYaml(i: number): string {
  const ns = NAMESPACES[i % NAMESPACES.length]!;
  const other = NAMESPACES[(i + 1) % NAMESPACES.length]!;
  const np = (spec: string) =>
    `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np${i}, namespace: ${ns}}\nspec:\n${spec}---\n`;
  const cnp = (spec: string) =>
    `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: cnp${i}, namespace: ${ns}}\nspec:\n${spec}---\n`;
  switch (i % 8) {
    case 0:
      return np(`  podSelector: {matchLabels: {app: ${app(i)}}}
  ingress: [{from: [{podSelector: {matchLabels: {app: ${app(i + 1)}}}}], ports: [{port: 80, protocol: TCP}]}]
`);
    case 1:
      return np(`  podSelector: {matchLabels: {tier: be}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: t${i % 3}}}, podSelector: {matchLabels: {tier: fe}}}]}]
`);
    case 2:
      return np(`  podSelector: {matchLabels: {app: ${app(i)}}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.${net(i)}.0/24, except: [10.${net(i)}.128/25]}}]
    ports: [{port: 443, protocol: TCP}]
  - to: [{podSelector: {}}]
`);
    case 3:
      return np(`  podSelector: {matchExpressions: [{key: app, operator: In, values: [${app(i)}, ${app(i + 3)}]}]}
  ingress: [{from: [{podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [be]}]}}], ports: [{port: http}, {port: 53, protocol: UDP}]}]
`);
    case 4:
      return cnp(`  endpointSelector: {matchLabels: {app: ${app(i)}}}
  ingress: [{fromEndpoints: [{matchLabels: {tier: fe}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
`);
    case 5:
      return cnp(`  endpointSelector: {matchLabels: {tier: fe}}
  egress:
  - toCIDR: [192.168.${i % 256}.0/24]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEndpoints: [{matchLabels: {app: ${app(i + 2)}}}]
`);
    case 6:
      return cnp(`  endpointSelector: {matchLabels: {app: ${app(i)}, tier: be}}
  ingress: [{fromEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: ${other}}}], toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "53", protocol: UDP}]}]}]
`);
    default:
      return cnp(`  endpointSelector: {matchLabels: {app: ${app(i)}}}
  egress:
  - toCIDRSet: [{cidr: 172.16.${i % 256}.0/24, except: [172.16.${i % 256}.0/28]}]
  - toEndpoints: [{matchLabels: {k8s:io.kubernetes.pod.namespace: ${other}, tier: be}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
`);
  }
}
