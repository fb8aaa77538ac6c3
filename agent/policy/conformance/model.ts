// The conformance case format, shared by the upstream truth tables and our own Cilium cases, and
// its rendering into cluster YAML + expected verdicts. The lab replays the same cases with real
// packets: render a step with `stepSources`, apply it, run `lab probe`, compare with
// `expectedRows`.
import ipaddr from 'ipaddr.js';
import { stringify } from 'yaml';

/** `x/a` one pod, `x/*` a namespace, `*` every pod; with clusters: `c2/x/a`, `c2/x/*`, `c2/*`. */
export type PodPattern = string;

/** Applied in order over "everything allowed", like upstream's Reachability.Expect* calls. */
export type Expectation = [from: PodPattern, to: PodPattern, allowed: boolean];

export interface ProbeCheck {
  port: number;
  protocol: 'TCP' | 'UDP' | 'SCTP';
  expect: Expectation[];
}

export interface CaseStep {
  /** create or replace these objects (policies, namespaces) */
  apply?: Record<string, unknown>[];
  /** delete policies by `Kind/namespace/name` (cluster-scoped: `Kind/name`) */
  delete?: string[];
  /** replace pod labels (pod label `pod: <name>` stays unless overridden) */
  podLabels?: { pod: string; labels: Record<string, string> }[];
  probes: ProbeCheck[];
}

export interface ConformanceCase {
  name: string;
  /** pods as `[cluster/]ns/name`; the default cluster is c1 */
  pods: string[];
  /** served ports and protocols: each pod names its ports `serve-<port>-<proto>` like upstream */
  ports: number[];
  protocols: ('TCP' | 'UDP' | 'SCTP')[];
  /** namespace labels beyond kubernetes.io/metadata.name, per `[cluster/]ns` */
  namespaceLabels?: Record<string, Record<string, string>>;
  steps: CaseStep[];
}

export const DEFAULT_CLUSTER = 'c1';

export function fullPod(p: string): string {
  return p.split('/').length === 2 ? `${DEFAULT_CLUSTER}/${p}` : p;
}

/** Deterministic pod IPs: cluster N, namespace x/y/z/... -> 10.N.<ns index>.<10 + pod index>. */
export function podIp(c: ConformanceCase, pod: string): string {
  const [cluster, ns, name] = fullPod(pod).split('/') as [string, string, string];
  const clusters = [...new Set(c.pods.map((p) => fullPod(p).split('/')[0]!))].sort();
  const ci = clusters.indexOf(cluster) + 1;
  const nsIndex = ns.length === 1 ? ns.charCodeAt(0) - 'w'.charCodeAt(0) : 9;
  const podIndex = name.length === 1 ? name.charCodeAt(0) - 'a'.charCodeAt(0) : 9;
  return `10.${ci}.${nsIndex}.${10 + podIndex}`;
}

interface State {
  objects: Map<string, Record<string, unknown>>;
  podLabels: Map<string, Record<string, string>>;
}

function objectKey(o: Record<string, unknown>, cluster: string): string {
  const meta = (o.metadata ?? {}) as { name?: string; namespace?: string };
  const cl = (o as { cluster?: string }).cluster ?? cluster;
  return meta.namespace
    ? `${cl}|${String(o.kind)}/${meta.namespace}/${meta.name}`
    : `${cl}|${String(o.kind)}/${meta.name}`;
}

function stateAt(c: ConformanceCase, step: number): State {
  const state: State = { objects: new Map(), podLabels: new Map() };
  for (const s of c.steps.slice(0, step + 1)) {
    for (const o of s.apply ?? []) state.objects.set(objectKey(o, DEFAULT_CLUSTER), o);
    for (const key of s.delete ?? []) {
      const k = key.includes('|') ? key : `${DEFAULT_CLUSTER}|${key}`;
      if (key === '*') state.objects.clear();
      else state.objects.delete(k);
    }
    for (const pl of s.podLabels ?? []) state.podLabels.set(fullPod(pl.pod), pl.labels);
  }
  return state;
}

/** Cluster name -> multi-document YAML of the state after `step`. Objects may carry `cluster`. */
export function stepSources(
  c: ConformanceCase,
  step: number,
  /** actual pod IPs by `cluster/ns/pod` (the lab's); default: the planned `podIp` */
  ips?: ReadonlyMap<string, string>,
): { cluster: string; file: string; text: string }[] {
  const state = stateAt(c, step);
  const ipOf = (pod: string) => ips?.get(fullPod(pod)) ?? podIp(c, pod);
  const byCluster = new Map<string, Record<string, unknown>[]>();
  const push = (cluster: string, o: Record<string, unknown>) => {
    let list = byCluster.get(cluster);
    if (!list) byCluster.set(cluster, (list = []));
    list.push(o);
  };
  const namespaces = new Set(c.pods.map((p) => fullPod(p).split('/').slice(0, 2).join('/')));
  for (const cn of [...namespaces].sort()) {
    const [cluster, ns] = cn.split('/') as [string, string];
    const labels = c.namespaceLabels?.[cn] ?? c.namespaceLabels?.[ns] ?? {};
    push(cluster, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { ...labels, 'kubernetes.io/metadata.name': ns } },
    });
  }
  for (const p of c.pods.map(fullPod)) {
    const [cluster, ns, name] = p.split('/') as [string, string, string];
    const ports = c.protocols.flatMap((proto) =>
      c.ports.map((port) => ({
        name: `serve-${port}-${proto.toLowerCase()}`,
        containerPort: port,
        protocol: proto,
      })),
    );
    push(cluster, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: ns, labels: state.podLabels.get(p) ?? { pod: name } },
      spec: { containers: [{ name: 'cont', image: 'agnhost', ports }] },
      status: { podIP: ipOf(p) },
    });
  }
  for (const [key, o] of state.objects) {
    const cluster = key.split('|')[0]!;
    const { cluster: _drop, ...obj } = o as { cluster?: string };
    push(cluster, resolveIps(obj, ipOf));
  }
  return [...byCluster]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([cluster, docs]) => ({
      cluster,
      file: `${c.name} step ${step + 1} (${cluster})`,
      text: docs.map((d) => stringify(d)).join('---\n'),
    }));
}

/**
 * `{{ip:x/b}}` -> that pod's IP; `{{cidr4:x/b}}` / `{{cidr16:x/b}}` -> the /4 (upstream's
 * makeLargeCIDRForIP) or /16 around it. Cases name addresses this way so a lab can use its own.
 */
function resolveIps<T>(value: T, ipOf: (pod: string) => string): T {
  const text = JSON.stringify(value).replace(
    /\{\{(ip|cidr4|cidr16):([^}]+)\}\}/g,
    (_m, kind: string, pod: string) => {
      const ip = ipOf(pod);
      if (kind === 'ip') return ip;
      const bits = kind === 'cidr4' ? 4 : 16;
      return `${ipaddr.IPv4.networkAddressFromCIDR(`${ip}/${bits}`).toString()}/${bits}`;
    },
  );
  return JSON.parse(text) as T;
}

function matchesPattern(pattern: PodPattern, pod: string): boolean {
  if (pattern === '*') return true;
  const want = pattern.split('/');
  const parts = want.length === 3 ? want : [DEFAULT_CLUSTER, ...want];
  const have = pod.split('/');
  return parts.every((seg, i) => seg === '*' || seg === have[i]);
}

/** Expected verdict for every ordered pair of distinct pods (`cluster/ns/pod` names). */
export function expectedRows(
  c: ConformanceCase,
  check: ProbeCheck,
): { from: string; to: string; allowed: boolean }[] {
  const pods = c.pods.map(fullPod).sort();
  const rows: { from: string; to: string; allowed: boolean }[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      let allowed = true;
      for (const [f, t, v] of check.expect)
        if (matchesPattern(f, from) && matchesPattern(t, to)) allowed = v;
      rows.push({ from, to, allowed });
    }
  }
  return rows;
}
