// The lab kubelet of one cluster: one light process serving every node of the cluster. It keeps
// each Node object Ready (while the node's agent answers), binds unscheduled pods (scheduler.ts),
// and for every pod bound to one of its nodes runs the pod as the lab does (namespace, CNI ADD,
// echo server on the declared ports) and reports Running with the pod's IP through /status.
// Deleted pods are removed (echo ended, CNI DEL, namespace gone). Level-triggered: every pod key
// goes through a key queue whose handler compares the API object with what runs, and a periodic
// full pass re-checks everything, so a restarted kubelet adopts its pods.
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { KubeClient } from '../../agent/k8s/client.ts';
import type { KeyQueue } from '../../agent/k8s/key-queue.ts';
import { Resource } from '../../agent/k8s/resource.ts';
import { Pods, type Pod } from '../../agent/k8s/resources.ts';
import { kubeConfigForAddress } from '../apiserver/client.ts';
import { apiRequest, ApiRequestError } from '../lab/control-plane.ts';
import { createPod, destroyPod, startEcho } from '../lab/pods.ts';
import { cmdlineOf } from '../lab/processes.ts';
import { declaredPorts, nodeStatus, runningPodStatus } from './pod-status.ts';
import { chooseNode, countPods } from './scheduler.ts';
import { PodState } from './state.ts';
import type { KubeletConfig, KubeletNode, RunningPod } from './types.ts';

type Log = (event: string, fields?: Record<string, unknown>) => void;

const MERGE_PATCH = 'application/merge-patch+json';

export class ClusterKubelet {
  private readonly pods: Resource<Pod>;
  private readonly state: PodState;
  private queue: KeyQueue | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** pods bound by this scheduler whose binding the watch has not shown yet */
  private readonly bindings = new Map<string, string>();

  constructor(
    private readonly config: KubeletConfig,
    private readonly log: Log = () => {},
  ) {
    this.pods = new Resource(new KubeClient(kubeConfigForAddress(config.apiAddress)), Pods, {
      // short watches: a stream that silently stops delivering is replaced within 30 s
      watchTimeoutSeconds: 30,
      onLog: (event, fields) => this.log(event, fields),
    });
    this.state = new PodState(config.stateFile);
  }

  async start(): Promise<void> {
    await this.heartbeat();
    this.queue = this.pods.subscribe((key, pod) => this.syncPod(key, pod), {
      concurrency: 4,
      onError: (key, err, attempt) =>
        this.log('pod-sync-failed', { key, attempt, error: String(err) }),
    });
    this.pods.start();
    await this.pods.synced;
    // Only now, with the full list in: pods this kubelet runs that the API no longer has.
    for (const key of this.state.keys()) this.queue.add(key);
    this.resyncTimer = setInterval(() => void this.resync(), this.config.resyncMs ?? 10_000);
    this.resyncTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    await this.pods.stop();
  }

  /** Resolves once every pod known now was handled once (tests, start-up). */
  async idle(): Promise<void> {
    await this.queue?.idle();
  }

  private async resync(): Promise<void> {
    await this.heartbeat().catch((err) => this.log('heartbeat-failed', { error: String(err) }));
    for (const key of new Set([...this.pods.list().map(podKey), ...this.state.keys()]))
      this.queue?.add(key);
  }

  /** Registers every node (idempotent) and posts its Ready condition. */
  private async heartbeat(): Promise<void> {
    const now = new Date().toISOString();
    await Promise.all(
      this.config.nodes.map(async (node) => {
        await this.registerNode(node);
        const agent = await callAgent(
          endpointSocketPath(node.stateDir),
          { op: 'ping' },
          2000,
        ).catch(() => undefined);
        await apiRequest(
          this.config.apiAddress,
          'PATCH',
          `/api/v1/nodes/${node.name}/status`,
          { status: nodeStatus(node, agent?.ok === true, now) },
          10_000,
          MERGE_PATCH,
        );
      }),
    );
  }

  private async registerNode(node: KubeletNode): Promise<void> {
    const body = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: node.name,
        labels: {
          'kubernetes.io/hostname': node.name,
          'kubernetes.io/os': 'linux',
          'isthmus.io/cluster': node.cluster,
        },
      },
      spec: { podCIDR: node.podCIDR, podCIDRs: [node.podCIDR] },
    };
    await apiRequest(this.config.apiAddress, 'POST', '/api/v1/nodes', body).catch(
      (err: ApiRequestError) => {
        if (err.status !== 409) throw err;
      },
    );
  }

  /** Converges one pod key: bind, create, report, or remove. */
  private async syncPod(key: string, pod: Pod | undefined): Promise<void> {
    if (pod && !pod.spec?.nodeName && !pod.metadata.deletionTimestamp && !this.bindings.has(key))
      return this.bind(key, pod);
    const node = this.config.nodes.find((n) => n.name === pod?.spec?.nodeName);
    const wanted = pod && node && !pod.metadata.deletionTimestamp ? pod : undefined;
    let running = this.state.get(key);
    if (
      running &&
      (!wanted || running.uid !== wanted.metadata.uid || running.node !== node?.name)
    ) {
      await this.removePod(key, running);
      running = undefined;
    }
    if (!wanted || !node) return;
    if (!running) running = await this.runPod(key, wanted, node);
    else await this.keepEchoAlive(key, running);
    if (wanted.status?.podIP !== running.ip || wanted.status?.phase !== 'Running')
      await this.reportRunning(running, wanted, node);
  }

  private async bind(key: string, pod: Pod): Promise<void> {
    const counts = countPods(this.pods.list());
    for (const [k, n] of this.bindings)
      if (!this.pods.get(k)?.spec?.nodeName) counts.set(n, (counts.get(n) ?? 0) + 1);
    const nodeName = chooseNode(
      this.config.nodes.map((n) => n.name),
      counts,
    );
    this.bindings.set(key, nodeName);
    try {
      await apiRequest(
        this.config.apiAddress,
        'PATCH',
        `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`,
        { metadata: { resourceVersion: pod.metadata.resourceVersion }, spec: { nodeName } },
        10_000,
        MERGE_PATCH,
      );
      this.log('pod-scheduled', { key, node: nodeName });
    } catch (err) {
      // 404: deleted meanwhile; 409: changed meanwhile, the newer object comes through the queue
      if (!(err instanceof ApiRequestError && (err.status === 404 || err.status === 409)))
        throw err;
    } finally {
      const forget = setTimeout(() => this.bindings.delete(key), 5000);
      forget.unref();
    }
  }

  private async runPod(key: string, pod: Pod, node: KubeletNode): Promise<RunningPod> {
    const created = await createPod(this.config.lab, node, {
      cluster: this.config.cluster,
      node: node.name,
      namespace: pod.metadata.namespace!,
      name: pod.metadata.name,
      ports: declaredPorts(pod.spec?.containers),
    });
    const running: RunningPod = { ...created, uid: pod.metadata.uid ?? '' };
    this.state.set(key, running);
    this.log('pod-started', { key, node: node.name, ip: running.ip });
    return running;
  }

  private async removePod(key: string, running: RunningPod): Promise<void> {
    const node = this.config.nodes.find((n) => n.name === running.node);
    if (node) await destroyPod(this.config.lab, node, running);
    this.state.delete(key);
    this.log('pod-removed', { key, node: running.node });
  }

  /** An echo server that died (or was killed) is started again in the same pod namespace. */
  private async keepEchoAlive(key: string, running: RunningPod): Promise<void> {
    if (!running.ports.length) return;
    if (running.echoPid && cmdlineOf(running.echoPid)?.includes(running.netnsPath)) return;
    running.echoPid = await startEcho(running);
    this.state.set(key, running);
    this.log('echo-restarted', { key });
  }

  private async reportRunning(running: RunningPod, pod: Pod, node: KubeletNode): Promise<void> {
    const status = runningPodStatus(running, node, pod.spec?.containers, new Date().toISOString());
    await apiRequest(
      this.config.apiAddress,
      'PATCH',
      `/api/v1/namespaces/${running.namespace}/pods/${running.name}/status`,
      { status },
      10_000,
      MERGE_PATCH,
    ).catch((err: unknown) => {
      if (!(err instanceof ApiRequestError && err.status === 404)) throw err;
    });
  }
}

const podKey = (p: Pod): string => `${p.metadata.namespace}/${p.metadata.name}`;
