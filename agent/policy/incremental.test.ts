// Property: for random sequences of identity, endpoint, named-port and policy changes, the deltas
// the engine emits, applied in order, equal a full computation by a fresh engine of the final state.
import test from 'ava';
import fc from 'fast-check';
import type { SecurityLabels } from '../identity/types.ts';
import { makeIdentity } from '../identity/types.ts';
import { contractViolations } from './contract.ts';
import { PolicyEngine, type EndpointDelta } from './engine.ts';
import { Protocol } from './entry.ts';
import { parseCiliumPolicy } from './parse-cilium.ts';
import { parseNetworkPolicy } from './parse-k8s.ts';
import { entryKey, prefixKey } from './resolve.ts';
import type { NamedPort, ParsedPolicy } from './types.ts';

type Obj = Record<string, unknown>;

const labelsArb = fc.record({
  cluster: fc.constantFrom('c1', 'c2'),
  ns: fc.constantFrom('x', 'y'),
  pod: fc.constantFrom('a', 'b', 'c'),
  tier: fc.option(fc.constantFrom('web', 'db'), { nil: undefined }),
});

function toLabels(l: { cluster: string; ns: string; pod: string; tier?: string }): SecurityLabels {
  const m = new Map([
    ['pod', l.pod],
    ['io.kubernetes.pod.namespace', l.ns],
    ['io.cilium.k8s.policy.cluster', l.cluster],
    ['io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name', l.ns],
  ]);
  if (l.tier) m.set('tier', l.tier);
  return m;
}

const podSel = fc.constantFrom<Obj>(
  {},
  { matchLabels: { pod: 'a' } },
  { matchLabels: { pod: 'b' } },
  { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
  { matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['c'] }] },
);
const nsSel = fc.constantFrom<Obj>({}, { matchLabels: { 'kubernetes.io/metadata.name': 'y' } });
const cidrPeer = fc.constantFrom<Obj>(
  { cidr: '10.1.0.0/16', except: ['10.1.1.0/24'] },
  { cidr: '10.0.0.0/8' },
  { cidr: '10.1.1.5/32' },
  { cidr: '10.1.0.0/16', except: ['10.1.0.0/17', '10.1.200.0/24'] },
);
const k8sPort = fc.constantFrom<Obj>(
  { port: 80 },
  { port: 'http' },
  { protocol: 'UDP' },
  { port: 1000, endPort: 2000 },
  { port: 'dns', protocol: 'UDP' },
);
const ciliumPort = fc.constantFrom<Obj>(
  { port: '80' },
  { port: 'http', protocol: 'TCP' },
  { port: '53', protocol: 'UDP' },
  { port: '1000', endPort: 1500, protocol: 'TCP' },
  { port: 'dns' },
);

const k8sPeer = fc.oneof(
  podSel.map((p) => ({ podSelector: p })),
  nsSel.map((n) => ({ namespaceSelector: n })),
  fc.tuple(podSel, nsSel).map(([p, n]) => ({ podSelector: p, namespaceSelector: n })),
  cidrPeer.map((b) => ({ ipBlock: b })),
);
const k8sRule = (dir: 'from' | 'to') =>
  fc
    .record({
      peers: fc.option(fc.array(k8sPeer, { maxLength: 2 }), { nil: undefined }),
      ports: fc.option(fc.array(k8sPort, { maxLength: 2 }), { nil: undefined }),
    })
    .map((r) => ({
      ...(r.peers ? { [dir]: r.peers } : {}),
      ...(r.ports ? { ports: r.ports } : {}),
    }));

const networkPolicy = fc
  .record({
    name: fc.constantFrom('p1', 'p2', 'p3'),
    ns: fc.constantFrom('x', 'y'),
    sel: podSel,
    ingress: fc.option(fc.array(k8sRule('from'), { maxLength: 2 }), { nil: undefined }),
    egress: fc.option(fc.array(k8sRule('to'), { maxLength: 2 }), { nil: undefined }),
  })
  .map((p) => ({
    kind: 'NetworkPolicy',
    metadata: { name: p.name, namespace: p.ns },
    spec: {
      podSelector: p.sel,
      ...(p.ingress ? { ingress: p.ingress } : {}),
      ...(p.egress ? { egress: p.egress } : {}),
    },
  }));

const endpointSel = fc.constantFrom<Obj>(
  {},
  { matchLabels: { pod: 'b' } },
  { matchLabels: { pod: 'b', 'io.cilium.k8s.policy.cluster': 'c2' } },
  { matchExpressions: [{ key: 'io.cilium.k8s.policy.cluster', operator: 'Exists' }] },
  { matchLabels: { 'reserved:world': '' } },
);
const ciliumRule = (dir: 'from' | 'to') =>
  fc
    .record({
      endpoints: fc.option(fc.array(endpointSel, { maxLength: 2 }), { nil: undefined }),
      cidrSet: fc.option(fc.array(cidrPeer, { maxLength: 2 }), { nil: undefined }),
      entities: fc.option(
        fc.array(fc.constantFrom('world', 'cluster', 'host', 'remote-node', 'all'), {
          maxLength: 2,
        }),
        { nil: undefined },
      ),
      ports: fc.option(fc.array(ciliumPort, { minLength: 1, maxLength: 2 }), { nil: undefined }),
    })
    .map((r) => ({
      ...(r.endpoints ? { [`${dir}Endpoints`]: r.endpoints } : {}),
      ...(r.cidrSet ? { [`${dir}CIDRSet`]: r.cidrSet } : {}),
      ...(r.entities ? { [`${dir}Entities`]: r.entities } : {}),
      ...(r.ports ? { toPorts: [{ ports: r.ports }] } : {}),
    }));

const ciliumPolicy = fc
  .record({
    kind: fc.constantFrom('CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'),
    name: fc.constantFrom('q1', 'q2'),
    sel: podSel,
    ingress: fc.option(fc.array(ciliumRule('from'), { maxLength: 2 }), { nil: undefined }),
    ingressDeny: fc.option(fc.array(ciliumRule('from'), { maxLength: 1 }), { nil: undefined }),
    egress: fc.option(fc.array(ciliumRule('to'), { maxLength: 2 }), { nil: undefined }),
    egressDeny: fc.option(fc.array(ciliumRule('to'), { maxLength: 1 }), { nil: undefined }),
  })
  .map((p) => {
    const { kind, name, sel, ...rules } = p;
    const spec: Obj = { endpointSelector: sel };
    for (const [k, v] of Object.entries(rules)) if (v) spec[k] = v;
    return { kind, metadata: { name, namespace: 'x' }, spec };
  });

const namedPorts = fc.subarray<NamedPort>([
  { name: 'http', port: 80, protocol: Protocol.TCP },
  { name: 'http', port: 8080, protocol: Protocol.TCP },
  { name: 'dns', port: 53, protocol: Protocol.UDP },
]);

const op = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      t: fc.constant('identity' as const),
      cluster: fc.constantFrom(1, 2),
      local: fc.integer({ min: 256, max: 263 }),
      labels: labelsArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('removeIdentity' as const),
      cluster: fc.constantFrom(1, 2),
      local: fc.integer({ min: 256, max: 263 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('policy' as const),
      obj: fc.oneof(networkPolicy, ciliumPolicy),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('deletePolicy' as const), which: fc.nat(10) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('endpoint' as const),
      ep: fc.constantFrom('e0', 'e1', 'e2'),
      pick: fc.nat(20),
      ports: namedPorts,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('deleteEndpoint' as const),
      ep: fc.constantFrom('e0', 'e1', 'e2'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('podPorts' as const),
      pod: fc.constantFrom('p0', 'p1', 'p2'),
      pick: fc.nat(20),
      ports: fc.option(namedPorts, { nil: undefined }),
    }),
  },
);

const identityOp = op.filter((o) => o.t === 'identity');
// a few identities and endpoints first, so most runs reach states with entries; then anything
const seeded = fc
  .tuple(
    fc.array(
      identityOp.map((o) => ({ ...o, cluster: 1 as const })),
      { minLength: 2, maxLength: 4 },
    ),
    fc.array(identityOp, { minLength: 1, maxLength: 4 }),
    fc.array(
      fc.record({
        t: fc.constant('endpoint' as const),
        ep: fc.constantFrom('e0', 'e1', 'e2'),
        pick: fc.nat(20),
        ports: namedPorts,
      }),
      { minLength: 1, maxLength: 3 },
    ),
    fc.array(op, { minLength: 1, maxLength: 40 }),
  )
  .map(([local, ids, eps, rest]) => [...local, ...ids, ...eps, ...rest]);

function parse(obj: Obj): ParsedPolicy[] {
  const res =
    obj.kind === 'NetworkPolicy'
      ? parseNetworkPolicy(obj, 'c1')
      : parseCiliumPolicy(obj, obj.kind as 'CiliumNetworkPolicy', 'c1');
  if (!res.ok) throw new Error(`generator made an invalid policy: ${res.error.message}`);
  return Array.isArray(res.value) ? res.value : [res.value];
}

interface Applied {
  ingressEnforced: boolean;
  egressEnforced: boolean;
  entries: Set<string>;
  prefixes: Set<string>;
}

function apply(state: Map<string, Applied>, deltas: EndpointDelta[]): void {
  for (const d of deltas) {
    const a = state.get(d.endpoint) ?? {
      ingressEnforced: false,
      egressEnforced: false,
      entries: new Set<string>(),
      prefixes: new Set<string>(),
    };
    for (const e of d.remove) a.entries.delete(entryKey(e));
    for (const p of d.removePrefixes) a.prefixes.delete(prefixKey(p));
    for (const e of d.add) a.entries.add(entryKey(e));
    for (const p of d.addPrefixes) a.prefixes.add(prefixKey(p));
    a.ingressEnforced = d.ingressEnforced;
    a.egressEnforced = d.egressEnforced;
    state.set(d.endpoint, a);
  }
}

test('incremental deltas applied in order equal a full recomputation', (t) => {
  let runs = 0;
  let nonTrivial = 0;
  let prefixRuns = 0;
  fc.assert(
    fc.property(seeded, (ops) => {
      runs++;
      const engine = new PolicyEngine('c1');
      const applied = new Map<string, Applied>();
      const identities = new Map<number, SecurityLabels>();
      const policies = new Map<string, ParsedPolicy>();
      const endpoints = new Map<string, { identity: number; ports: NamedPort[] }>();
      const podPorts = new Map<string, { identity: number; ports: NamedPort[] }>();
      const pickIdentity = (n: number, localOnly: boolean) => {
        const ids = [...identities.keys()]
          .filter((id) => !localOnly || id >>> 16 === 1)
          .sort((a, b) => a - b);
        return ids.length === 0 ? undefined : ids[n % ids.length];
      };
      for (const o of ops) {
        if (o.t === 'identity') {
          const id = makeIdentity(o.cluster, o.local);
          if ([...endpoints.values()].some((e) => e.identity === id)) continue; // labels of a live endpoint do not change
          const labels = toLabels({ ...o.labels, cluster: `c${o.cluster}` });
          identities.set(id, labels);
          apply(applied, engine.upsertIdentity(id, labels));
        } else if (o.t === 'removeIdentity') {
          const id = makeIdentity(o.cluster, o.local);
          if ([...endpoints.values()].some((e) => e.identity === id)) continue;
          identities.delete(id);
          apply(applied, engine.removeIdentity(id));
        } else if (o.t === 'policy') {
          for (const p of parse(o.obj)) {
            policies.set(p.key, p);
            apply(applied, engine.upsertPolicy(p));
          }
        } else if (o.t === 'deletePolicy') {
          const keys = [...policies.keys()].sort();
          const key = keys[o.which % Math.max(keys.length, 1)];
          if (key === undefined) continue;
          policies.delete(key);
          apply(applied, engine.deletePolicy(key));
        } else if (o.t === 'endpoint') {
          const identity = pickIdentity(o.pick, true);
          if (identity === undefined) continue;
          endpoints.set(o.ep, { identity, ports: o.ports });
          apply(applied, engine.upsertEndpoint({ name: o.ep, identity, namedPorts: o.ports }));
        } else if (o.t === 'deleteEndpoint') {
          endpoints.delete(o.ep);
          apply(applied, engine.deleteEndpoint(o.ep));
          applied.delete(o.ep);
        } else {
          const identity = pickIdentity(o.pick, false);
          if (identity === undefined) continue;
          if (o.ports) podPorts.set(o.pod, { identity, ports: o.ports });
          else podPorts.delete(o.pod);
          apply(applied, engine.setPodNamedPorts(o.pod, identity, o.ports));
        }
      }
      // a fresh engine fed only the final state
      const fresh = new PolicyEngine('c1');
      for (const [id, labels] of identities) fresh.upsertIdentity(id, labels);
      for (const [pod, p] of podPorts) fresh.setPodNamedPorts(pod, p.identity, p.ports);
      for (const p of policies.values()) fresh.upsertPolicy(p);
      for (const [name, e] of endpoints)
        fresh.upsertEndpoint({ name, identity: e.identity, namedPorts: e.ports });
      t.deepEqual([...applied.keys()].sort(), [...endpoints.keys()].sort());
      if ([...applied.values()].some((a) => a.entries.size > 0)) nonTrivial++;
      if ([...applied.values()].some((a) => a.prefixes.size > 0)) prefixRuns++;
      for (const name of endpoints.keys()) {
        const want = fresh.policyOf(name);
        const broken = contractViolations(want);
        if (broken.length > 0) {
          t.deepEqual(broken, [], `endpoint ${name} breaks the entry.ts contract`);
          return false;
        }
        const got = applied.get(name)!;
        const ok =
          got.ingressEnforced === want.ingressEnforced &&
          got.egressEnforced === want.egressEnforced &&
          sameSet(got.entries, want.entries.map(entryKey)) &&
          sameSet(got.prefixes, want.prefixes.map(prefixKey));
        if (!ok) {
          t.deepEqual(
            { ...got, entries: [...got.entries].sort(), prefixes: [...got.prefixes].sort() },
            {
              ingressEnforced: want.ingressEnforced,
              egressEnforced: want.egressEnforced,
              entries: want.entries.map(entryKey).sort(),
              prefixes: want.prefixes.map(prefixKey).sort(),
            },
            `endpoint ${name}`,
          );
          return false;
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.is(runs >= 500, true);
  t.log(`${nonTrivial} of ${runs} runs ended with entries, ${prefixRuns} with prefixes`);
  // the property must be exercised, not satisfied by empty states
  t.true(nonTrivial > runs / 6);
  t.true(prefixRuns > runs / 20);
});

function sameSet(a: Set<string>, b: string[]): boolean {
  return a.size === new Set(b).size && b.every((k) => a.has(k));
}
