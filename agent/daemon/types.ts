// What `isthmus agent status` shows, as served over the agent's endpoint socket. Imports nothing
// from siblings.
import type { ServiceView } from '../services/types.ts';
import type { AgentMeshStatus } from '../clustermesh/mesh.ts';

/** A policy object the agent refused, with kube-apiserver-like reasons. */
export interface InvalidPolicy {
  /** `Kind/namespace/name` or `Kind/name` */
  key: string;
  resourceVersion: string;
  reason: string;
  /** whether an earlier valid version stays enforced */
  lastGoodEnforced: boolean;
}

export interface EndpointStatus {
  id: number;
  pod: string;
  ip: string;
  identity: number;
  labels: string;
  /** bumped every time the endpoint's desired policy changes */
  policyRevision: number;
  ingressEnforced: boolean;
  egressEnforced: boolean;
  /** the BPF maps, read back now, hold exactly the desired policy */
  converged: boolean;
  /** policy-map entries and prefix-map rows of the desired policy (what the maps hold when converged) */
  policyEntries?: number;
  prefixEntries?: number;
  error?: string;
}

/** The agent process's memory when the status was computed (process.memoryUsage()). */
export interface AgentProcessStatus {
  pid: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
}

export interface AgentStatus {
  node: string;
  cluster: string;
  /** false: no control plane configured (static lab); policy and ipcache are not managed */
  kubernetes: boolean;
  /** every watch listed and every queue handled its initial list */
  synced: boolean;
  /**
   * the agent has handled the API's current objects and the BPF maps read back equal the
   * desired state computed from them (policy, prefix and endpoint rows, ipcache)
   */
  converged: boolean;
  /** why not converged */
  pending: string[];
  endpoints: EndpointStatus[];
  ipcache: { size: number; desired: number; converged: boolean };
  policies: { enforced: number; invalid: InvalidPolicy[] };
  lastFullPass?: { at: string; checked: number; repaired: number };
  process?: AgentProcessStatus;
  /** the service table: frontends, backends by cluster, annotations in force, backends in use */
  services?: ServiceView[];
  /** remote clusters (when the agent has a bundle directory) and what their sinks applied */
  clustermesh?: AgentMeshStatus;
  /** WireGuard device, key and peers (agent/daemon/encryption.ts) when encryption is on */
  encryption?: import('./encryption.ts').EncryptionStatus;
}
