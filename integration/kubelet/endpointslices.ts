// The lab's EndpointSlice controller (kube-controller-manager's, reduced): for every Service with
// a selector, discovery.k8s.io/v1 EndpointSlices listing the Running pods it selects with their
// readiness, ports resolved (a named targetPort against each pod's container port names; pods
// resolving to different numbers get different slices, as upstream does). Runs in the cluster's
// kubelet process. Level-triggered: a Service key is reconciled on any change of the Service, of
// a pod in its namespace or of its slices, and by a periodic full pass.
import { createHash } from 'node:crypto';
import { KubeClient } from '../../agent/k8s/client.ts';
import type { KeyQueue } from '../../agent/k8s/key-queue.ts';
import { Resource } from '../../agent/k8s/resource.ts';
import {
  EndpointSlices,
  Pods,
  Services,
  type EndpointSlice,
  type Pod,
  type Service,
} from '../../agent/k8s/resources.ts';
import { objectKey } from '../../agent/k8s/types.ts';
import { kubeConfigForAddress } from '../apiserver/client.ts';
import { apiRequest, ApiRequestError } from '../lab/control-plane.ts';

export const MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const MANAGER = 'isthmus-lab-endpointslices';
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

type Log = (event: string, fields?: Record<string, unknown>) => void;

interface SvcPort {
  name?: string;
  port: number;
  protocol?: string;
  targetPort?: number | string;
}

interface SlicePort {
  name: string;
  port: number;
  protocol: string;
}

/** A slice as written: metadata.name, ports and endpoints (the rest is fixed). */
export interface DesiredSlice {
  name: string;
  ports: SlicePort[];
  endpoints: Array<{
    addresses: string[];
    conditions: { ready: boolean; serving: boolean; terminating: boolean };
    nodeName?: string;
    targetRef: { kind: 'Pod'; namespace: string; name: string; uid?: string };
  }>;
}

const podReady = (pod: Pod): boolean =>
  (
    (pod.status as { conditions?: Array<{ type: string; status: string }> } | undefined)
      ?.conditions ?? []
  ).some((c) => c.type === 'Ready' && c.status === 'True');

function selects(selector: Record<string, string>, pod: Pod): boolean {
  const labels = pod.metadata.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The pod's port for a service port: a number as is, a name via the pod's container ports. */
function resolvePort(p: SvcPort, pod: Pod): number | undefined {
  const target = p.targetPort ?? p.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  const protocol = p.protocol ?? 'TCP';
  for (const c of pod.spec?.containers ?? [])
    for (const cp of c.ports ?? [])
      if (cp.name === target && (cp.protocol ?? 'TCP') === protocol) return cp.containerPort;
  return undefined;
}

/** The slices a Service should have given the pods (none without a selector). */
export function desiredSlices(svc: Service, pods: readonly Pod[]): DesiredSlice[] {
  const spec = (svc.spec ?? {}) as { selector?: Record<string, string>; ports?: SvcPort[] };
  if (!spec.selector || Object.keys(spec.selector).length === 0) return [];
  const ns = svc.metadata.namespace ?? 'default';
  const groups = new Map<string, DesiredSlice>();
  for (const pod of pods) {
    const ip = pod.status?.podIP;
    if ((pod.metadata.namespace ?? 'default') !== ns || !ip || pod.metadata.deletionTimestamp)
      continue;
    if (pod.status?.phase !== 'Running' || !selects(spec.selector, pod)) continue;
    const ports: SlicePort[] = [];
    for (const p of spec.ports ?? []) {
      const port = resolvePort(p, pod);
      if (port !== undefined)
        ports.push({ name: p.name ?? '', port, protocol: p.protocol ?? 'TCP' });
    }
    const signature = JSON.stringify(ports);
    const hash = createHash('sha1').update(signature).digest('hex').slice(0, 8);
    const slice = groups.get(signature) ?? {
      name: `${svc.metadata.name}-${hash}`,
      ports,
      endpoints: [],
    };
    const ready = podReady(pod);
    slice.endpoints.push({
      addresses: [ip],
      conditions: { ready, serving: ready, terminating: false },
      ...(pod.spec?.nodeName && { nodeName: pod.spec.nodeName }),
      targetRef: { kind: 'Pod', namespace: ns, name: pod.metadata.name, uid: pod.metadata.uid },
    });
    groups.set(signature, slice);
  }
  for (const s of groups.values())
    s.endpoints.sort((a, b) => a.targetRef.name.localeCompare(b.targetRef.name));
  return [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function sliceObject(svc: Service, d: DesiredSlice, resourceVersion?: string) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: d.name,
      namespace: svc.metadata.namespace,
      labels: { [SERVICE_NAME_LABEL]: svc.metadata.name, [MANAGED_BY]: MANAGER },
      ownerReferences: [
        { apiVersion: 'v1', kind: 'Service', name: svc.metadata.name, uid: svc.metadata.uid ?? '' },
      ],
      ...(resourceVersion && { resourceVersion }),
    },
    addressType: 'IPv4',
    endpoints: d.endpoints,
    ports: d.ports,
  };
}

const same = (have: EndpointSlice, d: DesiredSlice): boolean =>
  JSON.stringify(have.endpoints ?? []) === JSON.stringify(d.endpoints) &&
  JSON.stringify(have.ports ?? []) === JSON.stringify(d.ports);

export class EndpointSliceController {
  private readonly services: Resource<Service>;
  private readonly pods: Resource<Pod>;
  private readonly slices: Resource<EndpointSlice>;
  private queue: KeyQueue | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly apiAddress: string,
    private readonly log: Log = () => {},
  ) {
    const api = new KubeClient(kubeConfigForAddress(apiAddress));
    const opts = {
      watchTimeoutSeconds: 30,
      onLog: (e: string, f?: Record<string, unknown>) => this.log(e, f),
    };
    this.services = new Resource(api, Services, opts);
    this.pods = new Resource(api, Pods, opts);
    this.slices = new Resource(
      api,
      { ...EndpointSlices, labelSelector: `${MANAGED_BY}=${MANAGER}` },
      opts,
    );
  }

  async start(): Promise<void> {
    this.pods.start();
    this.slices.start();
    await Promise.all([this.pods.synced, this.slices.synced]);
    this.queue = this.services.subscribe((key) => this.sync(key), {
      onError: (key, err, attempt) =>
        this.log('endpointslice-sync-failed', { key, attempt, error: String(err) }),
    });
    this.unsubscribe.push(
      this.pods.onChange((c) => this.touchNamespace(c.object.metadata.namespace)),
    );
    this.unsubscribe.push(
      this.slices.onChange(({ object: s }) => {
        const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
        if (svc) this.queue?.add(`${s.metadata.namespace}/${svc}`);
      }),
    );
    this.services.start();
    await this.services.synced;
    this.timer = setInterval(() => this.resync(), 10_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const u of this.unsubscribe.splice(0)) u();
    await Promise.all([this.services.stop(), this.pods.stop(), this.slices.stop()]);
  }

  async idle(): Promise<void> {
    await this.queue?.idle();
  }

  private resync(): void {
    const keys = new Set(this.services.list().map(objectKey));
    for (const s of this.slices.list()) {
      const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
      if (svc) keys.add(`${s.metadata.namespace}/${svc}`);
    }
    for (const k of keys) this.queue?.add(k);
  }

  private touchNamespace(ns: string | undefined): void {
    for (const s of this.services.list())
      if (s.metadata.namespace === ns) this.queue?.add(objectKey(s));
  }

  /** Makes the slices of one Service match its pods; a deleted Service loses its slices. */
  private async sync(key: string): Promise<void> {
    const [ns, name] = key.split('/') as [string, string];
    const svc = this.services.get(key);
    const have = this.slices
      .list()
      .filter(
        (s) => s.metadata.namespace === ns && s.metadata.labels?.[SERVICE_NAME_LABEL] === name,
      );
    const want = svc ? desiredSlices(svc, this.pods.list()) : [];
    const base = `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`;
    for (const d of want) {
      const cur = have.find((s) => s.metadata.name === d.name);
      if (cur && same(cur, d)) continue;
      if (cur)
        await apiRequest(
          this.apiAddress,
          'PUT',
          `${base}/${d.name}`,
          sliceObject(svc!, d, cur.metadata.resourceVersion),
        );
      else await this.create(base, sliceObject(svc!, d));
    }
    for (const s of have)
      if (!want.some((d) => d.name === s.metadata.name))
        await apiRequest(this.apiAddress, 'DELETE', `${base}/${s.metadata.name}`).catch(
          (e: unknown) => {
            if (!(e instanceof ApiRequestError && e.status === 404)) throw e;
          },
        );
  }

  private async create(base: string, obj: unknown): Promise<void> {
    try {
      await apiRequest(this.apiAddress, 'POST', base, obj);
    } catch (e) {
      // Already there (our watch is behind): the slice event re-queues the key, retry then.
      if (e instanceof ApiRequestError && e.status === 409)
        throw new Error('slice exists; retrying', { cause: e });
      throw e;
    }
  }
}
