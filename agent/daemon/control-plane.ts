// The agent's control plane: Kubernetes state -> identities -> ipcache -> policy engine ->
// datapath. Each step is a table with an idempotent reconciler; the pieces start in the order
// that keeps an agent restart invisible to packets: every identity, policy, endpoint object and
// node is loaded before the ipcache's first full pass and before a restored endpoint's policy is
// rewritten.
import { KubeConfig } from '@kubernetes/client-node';
import type { Datapath } from '../datapath/types.ts';
import type { EndpointDatapath } from '../endpoint/types.ts';
import { K8sIdentityAllocator } from '../identity/k8s-allocator.ts';
import { IdentityGarbageCollector } from '../identity/k8s-identity-gc.ts';
import { identityLabels } from '../identity/k8s-identity-object.ts';
import { labelsToString } from '../identity/labels.ts';
import { IpcacheReconciler } from '../ipcache/reconciler.ts';
import { IpcacheTable } from '../ipcache/table.ts';
import { AgentWatches } from '../k8s/watches.ts';
import { KubeClient } from '../k8s/client.ts';
import { EndpointIpcache } from '../k8s/endpoint-ipcache.ts';
import { EndpointPublisher } from '../k8s/endpoint-publisher.ts';
import type { KeyQueue } from '../k8s/key-queue.ts';
import type { Resource } from '../k8s/resource.ts';
import type { KubeApi, KubeObject } from '../k8s/types.ts';
import { PolicyEngine } from '../policy/engine.ts';
import type { PolicyKind } from '../policy/types.ts';
import type { NodeRouteReconciler } from '../routing/reconciler.ts';
import type { NodeRoute } from '../routing/types.ts';
import { ServiceSync } from '../services/service-sync.ts';
import type { MeshTargets } from '../clustermesh/sink.ts';
import { EndpointPolicyReconciler } from './endpoint-policy.ts';
import { LocalEndpoints, protocolNumber } from './local-endpoints.ts';
import { NodeTable } from './node-table.ts';
import { PolicySources } from './policy-sources.ts';
import { computeStatus, type Observed } from './status.ts';
import type { AgentStatus } from './types.ts';

export interface ControlPlaneConfig {
  nodeName: string;
  nodeIP: string;
  /** the .1 of the node's pod CIDR, carried by every host veth */
  routerIP: string;
  cluster: { name: string; id: number };
  /** kubeconfig file of the cluster's API server */
  kubeconfig: string;
  /** period of the policy and ipcache full passes (read back, repair drift) */
  fullPassIntervalMs: number;
  identityGcGraceMs?: number;
}

export interface ControlPlaneDeps {
  maps: Pick<Datapath, 'applyEndpointPolicy' | 'endpointPolicyConverged' | 'ipcache'> &
    Partial<Pick<Datapath, 'lb'>>;
  /** endpoint rows and programs */
  inner: EndpointDatapath;
  routes: NodeRouteReconciler;
  staticNodes: readonly NodeRoute[];
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /** tests: an API other than the kubeconfig's */
  api?: KubeApi;
  /**
   * Awaited once every local table is loaded and before the ipcache's first full pass (which
   * deletes map rows the table lacks): the daemon starts ClusterMesh here and waits for the
   * remotes' initial sync, so a restarted agent never drops remote pods' rows.
   */
  beforeIpcachePrune?: () => Promise<void>;
}

const POLICY_KINDS = {
  networkPolicies: 'NetworkPolicy',
  ciliumNetworkPolicies: 'CiliumNetworkPolicy',
  ciliumClusterwideNetworkPolicies: 'CiliumClusterwideNetworkPolicy',
} as const satisfies Record<string, PolicyKind>;

export class AgentControlPlane {
  readonly endpoints: LocalEndpoints;
  /** Services + EndpointSlices -> load-balancing maps (when the maps include them) */
  readonly services: ServiceSync | undefined;
  private readonly api: KubeApi;
  private readonly watches: AgentWatches;
  private readonly engine: PolicyEngine;
  private readonly policy: EndpointPolicyReconciler;
  private readonly policies: PolicySources;
  private readonly ipcacheTable = new IpcacheTable();
  private readonly ipcache: IpcacheReconciler;
  private readonly endpointRows: EndpointIpcache;
  private readonly nodes: NodeTable;
  private readonly allocator: K8sIdentityAllocator;
  private readonly gc: IdentityGarbageCollector;
  private readonly publisher: EndpointPublisher;
  private readonly queues: KeyQueue[] = [];
  private readonly observed: Observed = new Map();
  private podsQueue: KeyQueue | undefined;
  private synced = false;

  constructor(
    private readonly config: ControlPlaneConfig,
    private readonly deps: ControlPlaneDeps,
  ) {
    const log = (msg: string, fields: Record<string, unknown> = {}) => deps.log(msg, fields);
    this.api = deps.api ?? new KubeClient(loadKubeConfig(config.kubeconfig));
    this.watches = new AgentWatches(this.api, config.nodeName, {
      onLog: (event, fields) => log(`k8s ${event}`, fields),
    });
    const r = this.watches.resources;
    this.engine = new PolicyEngine(config.cluster.name);
    this.policy = new EndpointPolicyReconciler(this.engine, deps.maps, {
      intervalMs: config.fullPassIntervalMs,
      log,
    });
    this.policies = new PolicySources(this.engine, (d) => this.policy.applyDeltas(d), log);
    this.ipcache = new IpcacheReconciler(this.ipcacheTable, deps.maps.ipcache, {
      intervalMs: config.fullPassIntervalMs,
      onError: (err) => log('ipcache write failed', { error: String(err) }),
      onRepair: (cidr, what) =>
        log('ipcache drifted from the desired state: repaired', { cidr, what }),
    });
    this.services = deps.maps.lb
      ? new ServiceSync(deps.maps.lb, { intervalMs: config.fullPassIntervalMs, log })
      : undefined;
    this.endpointRows = new EndpointIpcache(r.endpoints);
    this.nodes = new NodeTable(
      { name: config.nodeName, ip: config.nodeIP, routerIP: config.routerIP },
      deps.staticNodes,
      deps.routes,
      this.ipcacheTable,
      log,
    );
    this.allocator = new K8sIdentityAllocator({
      api: this.api,
      clusterId: config.cluster.id,
      identities: r.identities,
      onLost: (labels, formerId) => {
        log('identity lost: re-binding its endpoints', {
          formerId,
          labels: labelsToString(labels),
        });
        for (const b of this.endpoints.boundEndpoints())
          if (b.ep.identity === formerId) this.podsQueue?.add(b.key);
      },
    });
    this.gc = new IdentityGarbageCollector({
      api: this.api,
      clusterId: config.cluster.id,
      identities: r.identities,
      endpoints: r.endpoints,
      graceMs: config.identityGcGraceMs ?? 15 * 60_000,
      held: () => this.allocator.heldIds(),
    });
    this.publisher = new EndpointPublisher(this.api, config.nodeName, config.nodeIP);
    this.endpoints = new LocalEndpoints({
      api: this.api,
      cluster: config.cluster.name,
      allocator: this.allocator,
      publisher: this.publisher,
      engine: this.engine,
      policy: this.policy,
      inner: deps.inner,
      ipcache: this.ipcacheTable,
      log,
    });
  }

  /** Loads everything in dependency order; resolves once the state is synced and enforced. */
  async start(): Promise<void> {
    const r = this.watches.resources;
    this.watches.start();
    await this.watches.synced();
    await this.consume('identities', r.identities, (key, obj) => {
      const id = Number(key);
      if (!Number.isInteger(id)) return;
      this.policy.applyDeltas(
        obj ? this.engine.upsertIdentity(id, identityLabels(obj)) : this.engine.removeIdentity(id),
      );
    });
    for (const [name, kind] of Object.entries(POLICY_KINDS) as [
      keyof typeof POLICY_KINDS,
      PolicyKind,
    ][])
      await this.consume(name, r[name] as Resource<KubeObject>, (key, obj) =>
        this.policies.apply(kind, key, obj),
      );
    this.endpointRows.onChange((ip, row) => {
      if (row)
        this.ipcacheTable.upsert('endpoint', {
          cidr: ip,
          identity: row.identity,
          ...(row.hostIP && { hostIp: row.hostIP }),
        });
      else this.ipcacheTable.delete('endpoint', ip);
    });
    await this.consume('endpoints', r.endpoints, (key, cep) => {
      this.endpointRows.apply(key, cep);
      const rows = cep ? this.endpointRows.all().filter((x) => x.source === key) : [];
      const row = rows[0];
      this.policy.applyDeltas(
        this.engine.setPodNamedPorts(
          key,
          row?.identity ?? 0,
          row?.namedPorts.map((p) => ({ ...p, protocol: protocolNumber(p.protocol) })),
        ),
      );
    });
    await this.consume('nodes', r.nodes, (key, node) => this.nodes.onNode(key, node));
    await this.deps.beforeIpcachePrune?.();
    this.ipcache.start(); // the table is complete: its first full pass removes only stale rows
    await this.consume('namespaces', r.namespaces, (key) => {
      for (const pod of this.endpoints.podKeysIn(key)) this.podsQueue?.add(pod);
    });
    this.podsQueue = await this.consume('pods', r.pods, (key, pod) =>
      this.endpoints.onPod(key, pod, r.namespaces.get(pod?.metadata.namespace ?? '')),
    );
    this.endpoints.requeuePod = (key) => this.podsQueue?.add(key);
    const services = this.services;
    if (services) {
      await this.consume('services', r.services, (key, svc) => services.onService(key, svc));
      await this.consume('endpointSlices', r.endpointSlices, (key, s) => services.onSlice(key, s));
      services.start();
    }
    this.endpoints.markReady();
    this.policy.start();
    this.gc.start();
    this.synced = true;
    const live = new Set(this.endpoints.boundEndpoints().map((b) => b.key));
    await this.publisher
      .prune(live)
      .catch((err: unknown) =>
        this.deps.log('endpoint object prune failed', { error: String(err) }),
      );
    this.deps.log('control plane synced', {
      identities: r.identities.list().length,
      policies: this.policies.enforcedCount(),
      endpoints: live.size,
    });
  }

  async stop(): Promise<void> {
    this.policy.stop();
    this.ipcache.stop();
    this.gc.stop();
    this.services?.stop();
    for (const q of this.queues) q.stop();
    await this.watches.stop();
  }

  /** Status with convergence read back from the maps against the API's current objects. */
  async status(): Promise<AgentStatus> {
    const status = await computeStatus({
      api: this.api,
      nodeName: this.config.nodeName,
      cluster: this.config.cluster.name,
      synced: this.synced,
      observed: this.observed,
      endpoints: this.endpoints,
      policy: this.policy,
      policies: this.policies,
      ipcache: this.ipcache,
      ipcacheDesired: this.ipcacheTable.all().size,
    });
    return this.services ? { ...status, services: this.services.views() } : status;
  }

  /** What the ClusterMesh sink merges remote state into (agent/clustermesh). */
  meshTargets(): MeshTargets & { localNodes(): NodeRoute[] } {
    return {
      upsertIdentity: (id, labels) =>
        this.policy.applyDeltas(this.engine.upsertIdentity(id, labels)),
      removeIdentity: (id) => this.policy.applyDeltas(this.engine.removeIdentity(id)),
      ipcache: this.ipcacheTable,
      routes: this.deps.routes,
      ...(this.services && { services: this.services.table }),
      log: (msg, fields) => this.deps.log(msg, fields),
      localNodes: () => this.nodes.nodes(),
    };
  }

  /** Runs the policy and ipcache full passes now (tests, `agent status --repair` later). */
  fullPass(): void {
    this.policy.fullPass();
    this.ipcache.prune();
  }

  /** Subscribes a handler that records what it handled; resolves when the initial list is done. */
  private async consume<T extends KubeObject>(
    name: string,
    resource: Resource<T>,
    handler: (key: string, obj: T | undefined) => unknown,
  ): Promise<KeyQueue> {
    const seen = new Map<string, string>();
    this.observed.set(name, seen);
    const q = resource.subscribe(async (key, obj) => {
      try {
        await handler(key, obj);
      } catch (err) {
        this.deps.log(`${name} handler failed: retrying`, { key, error: String(err) });
        throw err;
      }
      if (obj) seen.set(key, obj.metadata.resourceVersion ?? '');
      else seen.delete(key);
    });
    this.queues.push(q);
    await q.synced;
    return q;
  }
}

/**
 * Loads a kubeconfig file. client-node refuses plain-HTTP servers unless the cluster entry skips
 * TLS verification; an http:// server has no TLS to verify, so such entries are marked so.
 */
export function loadKubeConfig(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  if (!kc.clusters.some((c) => c.server.startsWith('http://'))) return kc;
  const plain = new KubeConfig();
  plain.loadFromOptions({
    clusters: kc.clusters.map((c) =>
      c.server.startsWith('http://') ? { ...c, skipTLSVerify: true } : c,
    ),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
  return plain;
}
