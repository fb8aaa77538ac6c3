// Local endpoints and their identities. The CNI ADD path (through `attach`): read the pod, its
// namespace and service account from the API, allocate the identity cluster-wide, write the
// endpoint row, then its policy, then publish the CiliumEndpoint. The pods queue keeps them
// current: a relabelled pod (or namespace) gets a new identity, row, policy and object.
// Endpoints restored after an agent restart keep their rows and maps untouched until the pods
// queue, run after every policy and identity is loaded, binds them again.
import type { EndpointManager } from '../endpoint/manager.ts';
import type { EndpointDatapath, EndpointInfo } from '../endpoint/types.ts';
import type { K8sIdentityAllocator } from '../identity/k8s-allocator.ts';
import { labelsToString, podSecurityLabels } from '../identity/labels.ts';
import type { SecurityLabels } from '../identity/types.ts';
import type { EndpointPublisher } from '../k8s/endpoint-publisher.ts';
import { Namespaces, Pods, type Namespace, type Pod } from '../k8s/resources.ts';
import { isK8sError, type KubeApi } from '../k8s/types.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { Protocol, type ProtocolNumber } from '../policy/entry.ts';
import type { IpcacheTable } from '../ipcache/table.ts';
import type { EndpointPolicyReconciler } from './endpoint-policy.ts';

export interface LocalEndpointsDeps {
  api: KubeApi;
  cluster: string;
  allocator: K8sIdentityAllocator;
  publisher: EndpointPublisher;
  engine: PolicyEngine;
  policy: EndpointPolicyReconciler;
  /** writes endpoint rows and attaches programs (BpfEndpointDatapath) */
  inner: EndpointDatapath;
  /** this node's endpoints go into the ipcache at once, before their objects come back */
  ipcache: IpcacheTable;
  log: (msg: string, fields: Record<string, unknown>) => void;
}

interface Bound {
  ep: EndpointInfo;
  labels: SecurityLabels;
  labelsKey: string;
}

export const podKeyOf = (ep: { podNamespace: string; podName: string }): string =>
  `${ep.podNamespace}/${ep.podName}`;

export class LocalEndpoints implements EndpointDatapath {
  /** pod key -> endpoint with a held identity and a policy being enforced */
  private readonly bound = new Map<string, Bound>();
  private manager: EndpointManager | undefined;
  /** while the manager restores endpoints after a restart: rows only, maps untouched */
  restoring = false;
  /** until policies and identities are loaded, ADDs wait */
  private ready = false;
  /** the pods queue: an ADD re-enqueues its pod so a label change during the ADD is not lost */
  requeuePod: ((key: string) => void) | undefined;
  private readyWaiters: (() => void)[] = [];

  constructor(private readonly deps: LocalEndpointsDeps) {}

  setManager(manager: EndpointManager): void {
    this.manager = manager;
  }

  /** Policies and identities are loaded: ADDs may bind endpoints now. */
  markReady(): void {
    this.ready = true;
    for (const w of this.readyWaiters.splice(0)) w();
  }

  async attach(ep: EndpointInfo): Promise<void> {
    // restore after a restart: the previous agent's row, flags and maps stay as they are
    if (this.restoring) return this.deps.inner.attach(ep);
    await this.whenReady();
    if (!ep.podName) return this.deps.inner.attach(ep); // not a Kubernetes pod: no identity
    const pod = await this.readPod(ep.podNamespace, ep.podName);
    if (!pod) {
      this.deps.log('pod not in the API: endpoint stays at identity init', { pod: podKeyOf(ep) });
      return this.deps.inner.attach(ep);
    }
    await this.bindTo(ep, pod, await this.readNamespace(ep.podNamespace));
    this.requeuePod?.(podKeyOf(ep));
  }

  async detach(ep: EndpointInfo): Promise<void> {
    const key = podKeyOf(ep);
    const b = this.bound.get(key);
    if (b && b.ep.id === ep.id) {
      this.bound.delete(key);
      this.deps.policy.unbind(key);
      this.deps.policy.applyDeltas(this.deps.engine.deleteEndpoint(key));
      this.deps.allocator.release(b.ep.identity);
      this.deps.ipcache.delete('local', b.ep.ip);
      await this.deps.publisher
        .remove(ep.podNamespace, ep.podName)
        .catch((err: unknown) =>
          this.deps.log('endpoint object not removed', { pod: key, error: String(err) }),
        );
    }
    await this.deps.inner.detach(ep);
  }

  attachedIds(): Promise<number[]> {
    return this.deps.inner.attachedIds?.() ?? Promise.resolve([]);
  }

  /** Pods queue handler (this node's pods): bind restored endpoints, follow label changes. */
  async onPod(key: string, pod: Pod | undefined, ns: Namespace | undefined): Promise<void> {
    if (!pod) return; // CNI DEL removes the endpoint
    const ep = this.endpointOf(key);
    if (!ep) return;
    await this.bindTo(ep, pod, ns);
  }

  /** Endpoints of a namespace, by pod key (a namespace's labels are part of their identities). */
  podKeysIn(namespace: string): string[] {
    return (this.manager?.list() ?? [])
      .filter((ep) => ep.podNamespace === namespace && ep.podName)
      .map(podKeyOf);
  }

  boundEndpoints(): { key: string; ep: EndpointInfo; labels: SecurityLabels }[] {
    return [...this.bound].map(([key, b]) => ({ key, ep: b.ep, labels: b.labels }));
  }

  /** Identity, endpoint row, policy and endpoint object for `ep` as the pod says now. */
  private async bindTo(ep: EndpointInfo, pod: Pod, ns: Namespace | undefined): Promise<void> {
    const key = podKeyOf(ep);
    const labels = podSecurityLabels({
      cluster: this.deps.cluster,
      namespace: ep.podNamespace,
      ...(pod.spec?.serviceAccountName && { serviceAccount: pod.spec.serviceAccountName }),
      podLabels: pod.metadata.labels ?? {},
      namespaceLabels: ns?.metadata.labels ?? {},
    });
    const labelsKey = labelsToString(labels);
    const prev = this.bound.get(key);
    let current = ep;
    if (!prev || prev.labelsKey !== labelsKey || prev.ep.id !== ep.id) {
      const record = await this.deps.allocator.allocateAsync(labels);
      const formerId = prev?.ep.identity;
      if (formerId !== undefined) this.deps.allocator.release(formerId);
      // the manager stores `ep` after an ADD's attach: it must carry the identity
      ep.identity = record.id;
      current = ep;
      this.manager?.updateIdentity(current);
      this.bound.set(key, { ep: current, labels, labelsKey });
      if (formerId !== undefined && formerId !== record.id)
        this.deps.log('pod identity changed', { pod: key, from: formerId, to: record.id });
    } else current = prev.ep;
    // row first (the flags it holds stay), then the policy, then the object other nodes read
    await this.deps.inner.attach(current);
    this.deps.ipcache.upsert('local', { cidr: current.ip, identity: current.identity });
    const engine = this.deps.engine;
    this.deps.policy.applyDeltas(engine.upsertIdentity(current.identity, labels));
    engine.upsertEndpoint({
      name: key,
      identity: current.identity,
      namedPorts: current.namedPorts.map((p) => ({
        name: p.name,
        port: p.port,
        protocol: protocolNumber(p.protocol),
      })),
    });
    this.deps.policy.bind(key, current.id);
    await this.deps.publisher.publish({
      namespace: current.podNamespace,
      podName: current.podName,
      ...(pod.metadata.uid && { podUid: pod.metadata.uid }),
      endpointId: current.id,
      ips: [current.ip],
      identity: { id: current.identity, labels },
      namedPorts: current.namedPorts,
    });
  }

  private endpointOf(podKey: string): EndpointInfo | undefined {
    return this.manager?.list().find((ep) => podKeyOf(ep) === podKey);
  }

  private whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((r) => this.readyWaiters.push(r));
  }

  private async readPod(namespace: string, name: string): Promise<Pod | undefined> {
    return this.deps.api.get(Pods, name, namespace).catch((err: unknown) => {
      if (isK8sError(err, 'K8S_NOT_FOUND')) return undefined;
      throw err;
    });
  }

  private async readNamespace(name: string): Promise<Namespace | undefined> {
    return this.deps.api.get(Namespaces, name).catch((err: unknown) => {
      if (isK8sError(err, 'K8S_NOT_FOUND')) return undefined;
      throw err;
    });
  }
}

export function protocolNumber(p: 'TCP' | 'UDP' | 'SCTP'): ProtocolNumber {
  return p === 'UDP' ? Protocol.UDP : p === 'SCTP' ? Protocol.SCTP : Protocol.TCP;
}
