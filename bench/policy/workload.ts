// The benchmark mesh: 4 clusters x 12,500 identities, 1,000 policies of mixed selector shapes in
// cluster c1, 200 local endpoints. Deterministic (seeded), so runs compare.
import { podSecurityLabels } from '../../agent/identity/labels.ts';
import {
  makeIdentity,
  MIN_LOCAL_IDENTITY,
  type SecurityLabels,
} from '../../agent/identity/types.ts';
import { Protocol } from '../../agent/policy/entry.ts';
import { parseCiliumPolicy } from '../../agent/policy/parse-cilium.ts';
import { parseNetworkPolicy } from '../../agent/policy/parse-k8s.ts';
import type { NamedPort, ParsedPolicy } from '../../agent/policy/types.ts';

export const CLUSTERS = ['c1', 'c2', 'c3', 'c4'];
export const PER_CLUSTER = 12_500;
export const NAMESPACES = 50;
const APPS = 25;
const TIERS = 5;

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Labels of the i-th identity of a cluster: 50 ns x 25 apps x 5 tiers x 2 versions = 12,500 distinct. */
export function identityLabels(cluster: string, i: number, extra = ''): SecurityLabels {
  const ns = `ns-${i % NAMESPACES}`;
  const podLabels: Record<string, string> = {
    app: `app-${Math.floor(i / NAMESPACES) % APPS}`,
    tier: `t${Math.floor(i / (NAMESPACES * APPS)) % TIERS}`,
    version: `v${Math.floor(i / (NAMESPACES * APPS * TIERS)) % 2}`,
  };
  if (extra) podLabels.canary = extra;
  return podSecurityLabels({
    cluster,
    namespace: ns,
    podLabels,
    namespaceLabels: { 'kubernetes.io/metadata.name': ns, env: i % 2 ? 'prod' : 'dev' },
  });
}

export function identityId(clusterIndex: number, i: number): number {
  return makeIdentity(clusterIndex + 1, MIN_LOCAL_IDENTITY + i);
}

export function* allIdentities(): Generator<{ id: number; labels: SecurityLabels }> {
  for (let c = 0; c < CLUSTERS.length; c++)
    for (let i = 0; i < PER_CLUSTER; i++)
      yield { id: identityId(c, i), labels: identityLabels(CLUSTERS[c]!, i) };
}

export const NAMED_PORTS: NamedPort[] = [
  { name: 'http', port: 8080, protocol: Protocol.TCP },
  { name: 'metrics', port: 9090, protocol: Protocol.TCP },
];

/** Local endpoints: c1 identities 0..199 (ns-0..49 x app-0..3). */
export function endpoints(): { name: string; identity: number }[] {
  return Array.from({ length: 200 }, (_, i) => ({ name: `ep-${i}`, identity: identityId(0, i) }));
}

type Obj = Record<string, unknown>;
const CL = 'io.cilium.k8s.policy.cluster';

/** 1,000 policies: K8s NPs (pod, namespace, and/or, ipBlock, named ports), CNPs (cross-cluster In/Exists, ranges, deny, entities, CIDR sets), CCNPs. */
export function policies(seed = 7): ParsedPolicy[] {
  const r = rng(seed);
  const pick = (n: number) => Math.floor(r() * n);
  const app = () => `app-${pick(4)}`;
  const anyApp = () => `app-${pick(APPS)}`;
  const ns = () => `ns-${pick(NAMESPACES)}`;
  const out: ParsedPolicy[] = [];
  for (let i = 0; i < 1000; i++) {
    const shape = i % 10;
    const name = `p-${i}`;
    let obj: Obj;
    if (shape <= 3) {
      const peers = [
        [{ podSelector: { matchLabels: { app: anyApp() } } }],
        [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns() } },
            podSelector: { matchLabels: { app: anyApp() } },
          },
        ],
        [
          {
            podSelector: {
              matchExpressions: [
                { key: 'tier', operator: 'In', values: ['t1', 't2'] },
                { key: 'app', operator: 'In', values: [anyApp()] },
              ],
            },
          },
        ],
        ((o: number) => [
          { ipBlock: { cidr: `10.${o}.0.0/16`, except: [`10.${o}.${pick(200)}.0/24`] } },
        ])(pick(200)),
      ][shape]!;
      const ports = [
        [{ port: 80 }],
        [{ port: 'http' }],
        [{ port: 8000, endPort: 8100 }],
        [{ protocol: 'UDP', port: 53 }],
      ][pick(4)]!;
      obj = {
        kind: 'NetworkPolicy',
        metadata: { name, namespace: ns() },
        spec: {
          podSelector: { matchLabels: { app: app() } },
          ingress: [{ from: peers, ports }],
          ...(shape === 1 ? { egress: [{ to: peers, ports: [{ port: 'metrics' }] }] } : {}),
        },
      };
    } else if (shape <= 6) {
      const from =
        shape === 4
          ? [{ matchLabels: { app: anyApp(), [CL]: CLUSTERS[1 + pick(3)]! } }]
          : shape === 5
            ? [
                {
                  matchLabels: { app: anyApp() },
                  matchExpressions: [{ key: CL, operator: 'In', values: ['c2', 'c3'] }],
                },
              ]
            : [
                {
                  matchLabels: { app: anyApp(), version: 'v1' },
                  matchExpressions: [{ key: CL, operator: 'Exists' }],
                },
              ];
      obj = {
        kind: 'CiliumNetworkPolicy',
        metadata: { name, namespace: ns() },
        spec: {
          endpointSelector: { matchLabels: { app: app() } },
          ingress: [
            {
              fromEndpoints: from,
              toPorts: [{ ports: [{ port: '8080', endPort: 8090, protocol: 'TCP' }] }],
            },
          ],
          egress: [
            { toEndpoints: from, toPorts: [{ ports: [{ port: 'http' }] }] },
            { toEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] },
          ],
          ...(shape === 6
            ? {
                ingressDeny: [
                  {
                    fromEndpoints: [{ matchLabels: { tier: 't4' } }],
                    toPorts: [{ ports: [{ port: '8085', protocol: 'TCP' }] }],
                  },
                ],
              }
            : {}),
        },
      };
    } else if (shape <= 8) {
      obj = {
        kind: 'CiliumNetworkPolicy',
        metadata: { name, namespace: ns() },
        spec: {
          endpointSelector: { matchLabels: { app: app() } },
          egress: [
            {
              toCIDRSet: [
                ((o: number) => ({
                  cidr: `172.${o}.0.0/16`,
                  except: [`172.${o}.${pick(250)}.0/24`],
                }))(16 + pick(16)),
              ],
              toPorts: [{ ports: [{ port: '5432', protocol: 'TCP' }] }],
            },
          ],
          egressDeny: [{ toCIDR: [`172.16.${pick(250)}.${pick(250)}/32`] }],
        },
      };
    } else {
      obj = {
        kind: 'CiliumClusterwideNetworkPolicy',
        metadata: { name },
        spec: {
          endpointSelector: { matchLabels: { app: app(), tier: `t${pick(TIERS)}` } },
          ingress: [
            {
              fromEndpoints: [
                {
                  matchLabels: { app: anyApp(), 'io.kubernetes.pod.namespace': ns() },
                  matchExpressions: [{ key: CL, operator: 'In', values: ['c1', 'c4'] }],
                },
              ],
            },
            { fromEntities: ['host', 'remote-node'] },
          ],
        },
      };
    }
    const res =
      obj.kind === 'NetworkPolicy'
        ? parseNetworkPolicy(obj, 'c1')
        : parseCiliumPolicy(obj, obj.kind as 'CiliumNetworkPolicy', 'c1');
    if (!res.ok) throw res.error;
    out.push(...(Array.isArray(res.value) ? res.value : [res.value]));
  }
  return out;
}
