// The policy view of a whole mesh: namespaces and pods of every cluster become identities (one
// allocator per cluster), each cluster's engine enforces its own policies on its own pods, and
// every change comes out as per-endpoint deltas. Used by the reachability analysis and by tests;
// the agent feeds its engine the same way from the Kubernetes and kvstore watchers.
import { InMemoryIdentityAllocator } from '../identity/allocator.ts';
import { podSecurityLabels } from '../identity/labels.ts';
import type { IdentityAllocator } from '../identity/types.ts';
import { PolicyEngine, type EndpointDelta } from './engine.ts';
import { PolicyError } from './errors.ts';
import type { NamedPort, ParsedPolicy } from './types.ts';

export interface PodSpec {
  cluster: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  serviceAccount?: string;
  ip?: string;
  node?: string;
  namedPorts: NamedPort[];
}

export interface ClusterDelta {
  cluster: string;
  delta: EndpointDelta;
}

interface ClusterState {
  name: string;
  id: number;
  allocator: IdentityAllocator;
  engine: PolicyEngine;
  namespaces: Map<string, Record<string, string>>;
}

/** `cluster/namespace/name` */
export function podKey(p: { cluster: string; namespace: string; name: string }): string {
  return `${p.cluster}/${p.namespace}/${p.name}`;
}

export class PolicyMesh {
  private readonly clusters = new Map<string, ClusterState>();
  private readonly pods = new Map<string, { spec: PodSpec; identity: number }>();

  addCluster(name: string, id: number): void {
    if (this.clusters.has(name)) return;
    for (const c of this.clusters.values()) {
      if (c.id === id)
        throw new PolicyError(
          'POLICY_INPUT',
          `clusters ${c.name} and ${name} both have ID ${id}: cluster IDs must be unique in the mesh`,
        );
    }
    const engine = new PolicyEngine(name);
    // the new cluster's engine learns every identity already in the mesh
    for (const p of this.pods.values()) {
      const owner = this.mustCluster(p.spec.cluster);
      engine.upsertIdentity(p.identity, owner.allocator.lookup(p.identity)!.labels);
      engine.setPodNamedPorts(podKey(p.spec), p.identity, p.spec.namedPorts);
    }
    this.clusters.set(name, {
      name,
      id,
      allocator: new InMemoryIdentityAllocator(id),
      engine,
      namespaces: new Map(),
    });
  }

  clusterNames(): string[] {
    return [...this.clusters.keys()];
  }

  clusterId(name: string): number {
    return this.mustCluster(name).id;
  }

  engine(cluster: string): PolicyEngine {
    return this.mustCluster(cluster).engine;
  }

  pod(key: string): { spec: PodSpec; identity: number } | undefined {
    return this.pods.get(key);
  }

  allPods(): { spec: PodSpec; identity: number }[] {
    return [...this.pods.values()];
  }

  /** Namespace labels are part of pod identities: changing them re-identifies the namespace's pods. */
  upsertNamespace(cluster: string, name: string, labels: Record<string, string>): ClusterDelta[] {
    const c = this.mustCluster(cluster);
    c.namespaces.set(name, { ...labels, 'kubernetes.io/metadata.name': name });
    const out: ClusterDelta[] = [];
    for (const p of [...this.pods.values()]) {
      if (p.spec.cluster === cluster && p.spec.namespace === name)
        out.push(...this.upsertPod(p.spec));
    }
    return out;
  }

  upsertPod(spec: PodSpec): ClusterDelta[] {
    const c = this.mustCluster(spec.cluster);
    if (!c.namespaces.has(spec.namespace))
      c.namespaces.set(spec.namespace, { 'kubernetes.io/metadata.name': spec.namespace });
    const labels = podSecurityLabels({
      cluster: spec.cluster,
      namespace: spec.namespace,
      serviceAccount: spec.serviceAccount,
      podLabels: spec.labels,
      namespaceLabels: c.namespaces.get(spec.namespace)!,
    });
    const key = podKey(spec);
    const prev = this.pods.get(key);
    const record = c.allocator.allocate(labels);
    const out: ClusterDelta[] = [];
    const fresh = c.engine.cache.labelsOf(record.id) === undefined;
    if (fresh)
      for (const e of this.clusters.values())
        out.push(...tag(e.name, e.engine.upsertIdentity(record.id, record.labels)));
    this.pods.set(key, { spec, identity: record.id });
    for (const e of this.clusters.values())
      out.push(...tag(e.name, e.engine.setPodNamedPorts(key, record.id, spec.namedPorts)));
    out.push(
      ...tag(
        c.name,
        c.engine.upsertEndpoint({ name: key, identity: record.id, namedPorts: spec.namedPorts }),
      ),
    );
    if (prev) out.push(...this.releaseIdentity(c, prev.identity));
    return out;
  }

  deletePod(cluster: string, namespace: string, name: string): ClusterDelta[] {
    const key = podKey({ cluster, namespace, name });
    const prev = this.pods.get(key);
    if (!prev) return [];
    const c = this.mustCluster(cluster);
    this.pods.delete(key);
    const out: ClusterDelta[] = [];
    for (const e of this.clusters.values())
      out.push(...tag(e.name, e.engine.setPodNamedPorts(key, prev.identity, undefined)));
    out.push(...tag(c.name, c.engine.deleteEndpoint(key)));
    out.push(...this.releaseIdentity(c, prev.identity));
    return out;
  }

  upsertPolicy(cluster: string, policy: ParsedPolicy): ClusterDelta[] {
    const c = this.mustCluster(cluster);
    return tag(c.name, c.engine.upsertPolicy(policy));
  }

  deletePolicy(cluster: string, key: string): ClusterDelta[] {
    const c = this.mustCluster(cluster);
    return tag(c.name, c.engine.deletePolicy(key));
  }

  private releaseIdentity(c: ClusterState, id: number): ClusterDelta[] {
    if (!c.allocator.release(id)) return [];
    return [...this.clusters.values()].flatMap((e) => tag(e.name, e.engine.removeIdentity(id)));
  }

  private mustCluster(name: string): ClusterState {
    const c = this.clusters.get(name);
    if (!c)
      throw new PolicyError(
        'POLICY_INPUT',
        `unknown cluster ${name}: add it with addCluster first`,
      );
    return c;
  }
}

function tag(cluster: string, deltas: EndpointDelta[]): ClusterDelta[] {
  return deltas.map((delta) => ({ cluster, delta }));
}
