// `agent status`: endpoints with identities and policy revisions, ipcache size, invalid policies,
// and whether the datapath converged on the current state. "Current" is the API's, read fresh:
// every object the agent watches must have been handled at its latest resourceVersion, and the
// BPF maps, read back, must equal what the agent computed from them.
import { IpcacheReconciler } from '../ipcache/reconciler.ts';
import { labelsToString } from '../identity/labels.ts';
import {
  CiliumClusterwideNetworkPolicies,
  CiliumEndpoints,
  CiliumIdentities,
  CiliumNetworkPolicies,
  Namespaces,
  NetworkPolicies,
  Nodes,
  localPods,
  type Pod,
} from '../k8s/resources.ts';
import { objectKey, type KubeApi, type ResourceDef } from '../k8s/types.ts';
import type { EndpointPolicyReconciler } from './endpoint-policy.ts';
import type { LocalEndpoints } from './local-endpoints.ts';
import type { PolicySources } from './policy-sources.ts';
import type { AgentStatus, EndpointStatus } from './types.ts';

/** resource name -> object key -> resourceVersion handled */
export type Observed = Map<string, Map<string, string>>;

export interface StatusInputs {
  api: KubeApi;
  nodeName: string;
  cluster: string;
  synced: boolean;
  observed: Observed;
  endpoints: LocalEndpoints;
  policy: EndpointPolicyReconciler;
  policies: PolicySources;
  ipcache: IpcacheReconciler;
  ipcacheDesired: number;
}

export async function computeStatus(i: StatusInputs): Promise<AgentStatus> {
  const pending: string[] = [];
  if (!i.synced) pending.push('the control plane has not finished its initial sync');
  const policyStatus = new Map(i.policy.status().map((s) => [s.name, s]));
  const endpoints: EndpointStatus[] = i.endpoints.boundEndpoints().map(({ key, ep, labels }) => {
    const s = policyStatus.get(key);
    const desired = i.policy.desired(key);
    if (!s?.converged) pending.push(`endpoint ${key}: BPF maps differ from its desired policy`);
    if (s?.error) pending.push(`endpoint ${key}: ${s.error}`);
    return {
      id: ep.id,
      pod: key,
      ip: ep.ip,
      identity: ep.identity,
      labels: labelsToString(labels),
      policyRevision: s?.revision ?? 0,
      ingressEnforced: desired.ingressEnforced,
      egressEnforced: desired.egressEnforced,
      converged: s?.converged ?? false,
      policyEntries: desired.entries.length,
      prefixEntries: desired.prefixes.length,
      ...(s?.error && { error: s.error }),
    };
  });
  const ipc = i.ipcache.converged();
  if (!ipc.ok) pending.push(`ipcache: ${ipc.difference}`);
  if (i.synced) pending.push(...(await staleObjects(i, new Set(endpoints.map((e) => e.pod)))));
  return {
    node: i.nodeName,
    cluster: i.cluster,
    kubernetes: true,
    synced: i.synced,
    converged: pending.length === 0,
    pending,
    endpoints: endpoints.sort((a, b) => a.pod.localeCompare(b.pod)),
    ipcache: { size: ipc.size, desired: i.ipcacheDesired, converged: ipc.ok },
    policies: { enforced: i.policies.enforcedCount(), invalid: i.policies.invalidPolicies() },
    ...(i.policy.lastFullPass() && { lastFullPass: i.policy.lastFullPass()! }),
    process: processMemory(),
  };
}

function processMemory(): AgentStatus['process'] {
  const m = process.memoryUsage();
  return {
    pid: process.pid,
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
  };
}

/** What the API holds now that the agent has not handled yet (or handled at an older version). */
async function staleObjects(i: StatusInputs, bound: Set<string>): Promise<string[]> {
  const defs: [string, ResourceDef][] = [
    ['identities', CiliumIdentities],
    ['networkPolicies', NetworkPolicies],
    ['ciliumNetworkPolicies', CiliumNetworkPolicies],
    ['ciliumClusterwideNetworkPolicies', CiliumClusterwideNetworkPolicies],
    ['endpoints', CiliumEndpoints],
    ['nodes', Nodes],
    ['namespaces', Namespaces],
    ['pods', localPods(i.nodeName)],
  ];
  const out: string[] = [];
  try {
    const lists = await Promise.all(defs.map(([, def]) => i.api.list(def)));
    defs.forEach(([name], n) => {
      const seen = i.observed.get(name) ?? new Map<string, string>();
      const items = lists[n]!.items;
      for (const o of items) {
        const key = objectKey(o);
        if (seen.get(key) !== o.metadata.resourceVersion)
          out.push(`${name} ${key}@${o.metadata.resourceVersion} not handled yet`);
      }
      if (seen.size !== items.length) {
        const live = new Set(items.map(objectKey));
        for (const key of seen.keys())
          if (!live.has(key)) out.push(`${name} ${key}: deletion not handled yet`);
      }
      if (name === 'pods')
        for (const pod of items as Pod[])
          if (runsHere(pod) && !bound.has(objectKey(pod)))
            out.push(`pod ${objectKey(pod)} runs but has no endpoint with an identity yet`);
    });
  } catch (err) {
    out.push(`cannot read the API to compare: ${err instanceof Error ? err.message : String(err)}`);
  }
  return out;
}

const runsHere = (pod: Pod): boolean =>
  !!pod.status?.podIP && !pod.metadata.deletionTimestamp && !pod.spec?.hostNetwork;
