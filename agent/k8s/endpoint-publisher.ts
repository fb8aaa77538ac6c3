// Publishes this node's endpoints as CiliumEndpoint objects (namespace and name of the pod), so
// every agent of the cluster learns pod IP -> identity, host IP and named ports. An agent only
// ever deletes objects it owns: labelled with its node name and naming its node IP.
import { labelsToString } from '../identity/labels.ts';
import type { SecurityLabels } from '../identity/types.ts';
import { CiliumEndpoints, type CiliumEndpoint, type NamedPort, type Pod } from './resources.ts';
import { isK8sError, type KubeApi } from './types.ts';

export const NODE_LABEL = 'isthmus.io/node';
export const IDENTITY_LABEL = 'isthmus.io/identity';

export interface LocalEndpoint {
  namespace: string;
  podName: string;
  /** The pod's UID: the object gets an owner reference, so Kubernetes' GC removes it too. */
  podUid?: string;
  /** Datapath endpoint id, when the agent has one. */
  endpointId?: number;
  ips: string[];
  identity: { id: number; labels: SecurityLabels };
  namedPorts: NamedPort[];
}

export type RemoveResult = 'deleted' | 'absent' | 'not-owned';

/** The named container ports of a pod, as the endpoint object carries them. */
export function podNamedPorts(pod: Pod): NamedPort[] {
  const ports: NamedPort[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.name)
        ports.push({ name: p.name, port: p.containerPort, protocol: p.protocol ?? 'TCP' });
    }
  }
  return ports;
}

const MAX_TRIES = 8;

export class EndpointPublisher {
  constructor(
    private readonly api: KubeApi,
    readonly nodeName: string,
    readonly nodeIP: string,
  ) {}

  /** The object this node wants for `ep`. */
  desired(ep: LocalEndpoint): CiliumEndpoint {
    const addressing = ep.ips.map((ip) => (ip.includes(':') ? { ipv6: ip } : { ipv4: ip }));
    const labels = labelsToString(ep.identity.labels)
      .split(';')
      .filter((l) => l !== '');
    return {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: {
        name: ep.podName,
        namespace: ep.namespace,
        labels: { [NODE_LABEL]: this.nodeName, [IDENTITY_LABEL]: String(ep.identity.id) },
        ...(ep.podUid
          ? {
              ownerReferences: [
                { apiVersion: 'v1', kind: 'Pod', name: ep.podName, uid: ep.podUid },
              ],
            }
          : {}),
      },
      status: {
        ...(ep.endpointId !== undefined ? { id: ep.endpointId } : {}),
        identity: { id: ep.identity.id, labels },
        networking: { addressing, node: this.nodeIP },
        encryption: {},
        'named-ports': [...ep.namedPorts].sort((a, b) => (a.name < b.name ? -1 : 1)),
        state: 'ready',
      },
    };
  }

  /** Creates or updates the endpoint's object; a no-op when it already says the same. */
  async publish(ep: LocalEndpoint): Promise<CiliumEndpoint> {
    const want = this.desired(ep);
    for (let i = 0; i < MAX_TRIES; i++) {
      const cur = await this.read(ep.namespace, ep.podName);
      if (!cur) {
        try {
          return await this.api.create(CiliumEndpoints, want);
        } catch (err) {
          if (isK8sError(err, 'K8S_ALREADY_EXISTS')) continue;
          throw err;
        }
      }
      if (sameContent(cur, want)) return cur;
      // The pod runs here now (kubelet says so): take the object over, even from another node.
      const next = {
        ...want,
        metadata: {
          ...cur.metadata,
          ...want.metadata,
          resourceVersion: cur.metadata.resourceVersion,
        },
      };
      try {
        return await this.api.replace(CiliumEndpoints, next);
      } catch (err) {
        if (isK8sError(err, 'K8S_CONFLICT') || isK8sError(err, 'K8S_NOT_FOUND')) continue;
        throw err;
      }
    }
    throw new Error(
      `CiliumEndpoint ${ep.namespace}/${ep.podName} kept changing under us (${MAX_TRIES} tries): retry later`,
    );
  }

  /** Deletes the endpoint's object if this node owns it; idempotent. */
  async remove(namespace: string, podName: string): Promise<RemoveResult> {
    for (let i = 0; i < MAX_TRIES; i++) {
      const cur = await this.read(namespace, podName);
      if (!cur) return 'absent';
      if (!this.owns(cur)) return 'not-owned';
      try {
        // Preconditions: if another node took it over meanwhile, the delete fails and we re-check.
        await this.api.delete(CiliumEndpoints, podName, namespace, {
          ...(cur.metadata.uid ? { uid: cur.metadata.uid } : {}),
          ...(cur.metadata.resourceVersion
            ? { resourceVersion: cur.metadata.resourceVersion }
            : {}),
        });
        return 'deleted';
      } catch (err) {
        if (isK8sError(err, 'K8S_NOT_FOUND')) return 'absent';
        if (isK8sError(err, 'K8S_CONFLICT')) continue;
        throw err;
      }
    }
    throw new Error(`CiliumEndpoint ${namespace}/${podName} kept changing under us: retry later`);
  }

  /**
   * Deletes this node's objects whose pods are gone ("ns/name" keys in `live`). Call only after
   * the local pods were synced, or a slow first list would delete live endpoints.
   */
  async prune(live: ReadonlySet<string>): Promise<string[]> {
    const { items } = await this.api.list(CiliumEndpoints, {
      labelSelector: `${NODE_LABEL}=${this.nodeName}`,
    });
    const removed: string[] = [];
    for (const cep of items) {
      const key = `${cep.metadata.namespace}/${cep.metadata.name}`;
      if (live.has(key) || !this.owns(cep)) continue;
      if ((await this.remove(cep.metadata.namespace!, cep.metadata.name)) === 'deleted')
        removed.push(key);
    }
    return removed;
  }

  owns(cep: CiliumEndpoint): boolean {
    return (
      cep.metadata.labels?.[NODE_LABEL] === this.nodeName &&
      cep.status?.networking?.node === this.nodeIP
    );
  }

  private async read(namespace: string, name: string): Promise<CiliumEndpoint | undefined> {
    try {
      return await this.api.get(CiliumEndpoints, name, namespace);
    } catch (err) {
      if (isK8sError(err, 'K8S_NOT_FOUND')) return undefined;
      throw err;
    }
  }
}

function sameContent(cur: CiliumEndpoint, want: CiliumEndpoint): boolean {
  const labelsOk = Object.entries(want.metadata.labels ?? {}).every(
    ([k, v]) => cur.metadata.labels?.[k] === v,
  );
  return labelsOk && JSON.stringify(cur.status) === JSON.stringify(want.status);
}
