// Loads cluster state from multi-document YAML (Namespaces, Pods, policies, an optional Cluster
// object) into a PolicyMesh. Cluster IDs: a `kind: Cluster` document (`metadata.name`,
// `spec.id`) sets one; clusters without one get the lowest free ID from 1 in order of first
// appearance on the command line.
import { parseAllDocuments } from 'yaml';
import { MAX_CLUSTER_ID } from '../identity/types.ts';
import { Protocol } from './entry.ts';
import { PolicyError } from './errors.ts';
import { PolicyMesh, type PodSpec } from './mesh.ts';
import { parseCiliumPolicy } from './parse-cilium.ts';
import { parseNetworkPolicy } from './parse-k8s.ts';
import { PROTOCOL_NAMES } from './ports.ts';
import { isObject } from './selector.ts';
import type { NamedPort, ParsedPolicy } from './types.ts';

export interface ClusterSource {
  cluster: string;
  /** file name for messages */
  file: string;
  text: string;
}

export interface Doc {
  cluster: string;
  where: string;
  obj: Record<string, unknown>;
}

const POLICY_KINDS = ['NetworkPolicy', 'CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy'];
const KNOWN_KINDS = ['Namespace', 'Pod', 'Cluster', 'List', ...POLICY_KINDS];

/** Parses every source and builds the mesh; throws PolicyError naming file and document. */
export function loadMesh(sources: readonly ClusterSource[]): PolicyMesh {
  const docs = sources.flatMap(parseSource);
  const mesh = new PolicyMesh();
  for (const [name, id] of clusterIds(sources, docs)) mesh.addCluster(name, id);
  for (const d of docs)
    if (d.obj.kind === 'Namespace')
      mesh.upsertNamespace(d.cluster, meta(d).name, stringMap(d.obj.metadata, 'labels'));
  for (const d of docs) if (d.obj.kind === 'Pod') mesh.upsertPod(podSpec(d));
  for (const d of docs) {
    if (!POLICY_KINDS.includes(d.obj.kind as string)) continue;
    for (const p of parsePolicyDoc(d)) mesh.upsertPolicy(d.cluster, p);
  }
  return mesh;
}

function parseSource(src: ClusterSource): Doc[] {
  const out: Doc[] = [];
  parseAllDocuments(src.text).forEach((doc, i) => {
    const where = `${src.file}, document ${i + 1}`;
    if (doc.errors.length > 0) {
      throw new PolicyError('POLICY_INPUT', `${where}: malformed YAML: ${doc.errors[0]!.message}`, {
        cause: doc.errors[0],
      });
    }
    const obj: unknown = doc.toJS();
    if (obj === null || obj === undefined) return;
    if (!isObject(obj))
      throw new PolicyError(
        'POLICY_INPUT',
        `${where}: expected a Kubernetes object (a map with kind), got ${typeof obj}`,
      );
    const items = obj.kind === 'List' && Array.isArray(obj.items) ? obj.items : [obj];
    items.forEach((item, j) => {
      const w = items.length > 1 || obj.kind === 'List' ? `${where}, item ${j + 1}` : where;
      if (!isObject(item) || !KNOWN_KINDS.includes(item.kind as string)) {
        const kind = isObject(item) ? item.kind : undefined;
        throw new PolicyError(
          'POLICY_INPUT',
          `${w}: unknown kind ${JSON.stringify(kind)}: supported kinds are ${KNOWN_KINDS.join(', ')}`,
        );
      }
      out.push({ cluster: src.cluster, where: w, obj: item });
    });
  });
  return out;
}

function clusterIds(sources: readonly ClusterSource[], docs: Doc[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const d of docs) {
    if (d.obj.kind !== 'Cluster') continue;
    const name = meta(d).name || d.cluster;
    const spec = isObject(d.obj.spec) ? d.obj.spec : {};
    const id = spec.id;
    if (name !== d.cluster)
      throw new PolicyError(
        'POLICY_INPUT',
        `${d.where}: Cluster object names ${name} but the file was given for cluster ${d.cluster}`,
      );
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > MAX_CLUSTER_ID) {
      throw new PolicyError(
        'POLICY_INPUT',
        `${d.where}: spec.id must be an integer from 1 to ${MAX_CLUSTER_ID}, got ${JSON.stringify(id)}`,
      );
    }
    if (ids.has(name) && ids.get(name) !== id)
      throw new PolicyError(
        'POLICY_INPUT',
        `${d.where}: cluster ${name} is given two IDs (${ids.get(name)} and ${id})`,
      );
    ids.set(name, id);
  }
  const taken = new Set(ids.values());
  let next = 1;
  for (const s of sources) {
    if (ids.has(s.cluster)) continue;
    while (taken.has(next)) next++;
    ids.set(s.cluster, next);
    taken.add(next);
  }
  // order of first appearance
  return new Map(sources.map((s) => [s.cluster, ids.get(s.cluster)!] as const));
}

function meta(d: Doc): { name: string; namespace: string } {
  const m = isObject(d.obj.metadata) ? d.obj.metadata : {};
  const name = typeof m.name === 'string' ? m.name : '';
  const namespace = typeof m.namespace === 'string' && m.namespace ? m.namespace : 'default';
  if (name === '')
    throw new PolicyError('POLICY_INPUT', `${d.where}: ${String(d.obj.kind)} has no metadata.name`);
  return { name, namespace };
}

function stringMap(parent: unknown, field: string): Record<string, string> {
  const v = isObject(parent) ? parent[field] : undefined;
  if (!isObject(v)) return {};
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
}

function podSpec(d: Doc): PodSpec {
  const { name, namespace } = meta(d);
  const spec = isObject(d.obj.spec) ? d.obj.spec : {};
  const status = isObject(d.obj.status) ? d.obj.status : {};
  const namedPorts: NamedPort[] = [];
  for (const c of Array.isArray(spec.containers) ? spec.containers : []) {
    for (const p of isObject(c) && Array.isArray(c.ports) ? c.ports : []) {
      if (!isObject(p) || typeof p.name !== 'string' || typeof p.containerPort !== 'number')
        continue;
      const protocol = PROTOCOL_NAMES[(p.protocol as string | undefined) ?? 'TCP'] ?? Protocol.TCP;
      namedPorts.push({ name: p.name, port: p.containerPort, protocol });
    }
  }
  return {
    cluster: d.cluster,
    namespace,
    name,
    labels: stringMap(d.obj.metadata, 'labels'),
    serviceAccount:
      typeof spec.serviceAccountName === 'string' ? spec.serviceAccountName : undefined,
    ip: typeof status.podIP === 'string' ? status.podIP : undefined,
    node: typeof spec.nodeName === 'string' ? spec.nodeName : undefined,
    namedPorts,
  };
}

export function parsePolicyDoc(d: Doc): ParsedPolicy[] {
  const kind = d.obj.kind as string;
  const res =
    kind === 'NetworkPolicy'
      ? parseNetworkPolicy(d.obj, d.cluster)
      : parseCiliumPolicy(d.obj, kind as 'CiliumNetworkPolicy', d.cluster);
  if (!res.ok)
    throw new PolicyError('POLICY_INVALID', `${d.where}: ${res.error.message}`, {
      cause: res.error,
    });
  return Array.isArray(res.value) ? res.value : [res.value];
}
