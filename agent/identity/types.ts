// Numeric security identities: 24 bits, `clusterID << 16 | local` (DESIGN.md "Identities").
// Imports nothing from sibling folders.

/** Reserved identities, the same in every cluster (cluster bits zero). */
export const ReservedIdentity = {
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
} as const;
export type ReservedName = keyof typeof ReservedIdentity;

export const MAX_CLUSTER_ID = 255;
/** Local identities of a cluster start here (below are reserved, as in Cilium). */
export const MIN_LOCAL_IDENTITY = 256;
export const MAX_LOCAL_IDENTITY = 0xffff;

/** Label key of the cluster a pod runs in. */
export const CLUSTER_LABEL = 'io.cilium.k8s.policy.cluster';
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** Key under which reserved identities carry their label, e.g. `reserved:world` = "". */
export const RESERVED_SOURCE = 'reserved:';

/**
 * Security labels of an identity: key -> value. Pod labels use the `k8s` source, which is
 * implied (keys carry no source prefix); reserved labels keep the `reserved:` prefix in the key.
 */
export type SecurityLabels = ReadonlyMap<string, string>;

export interface IdentityRecord {
  id: number;
  labels: SecurityLabels;
}

/** Allocation of numeric identities for label sets; the agent supplies a cluster-wide one. */
export interface IdentityAllocator {
  readonly clusterId: number;
  /** Same labels -> same identity; every call takes one reference. */
  allocate(labels: SecurityLabels): IdentityRecord;
  /** Drops one reference; returns true when the identity was freed. */
  release(id: number): boolean;
  lookup(id: number): IdentityRecord | undefined;
}

export class IdentityError extends Error {
  constructor(
    readonly code: 'IDENTITY_EXHAUSTED' | 'IDENTITY_BAD_CLUSTER' | 'IDENTITY_UNKNOWN',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IdentityError';
  }
}

export function makeIdentity(clusterId: number, local: number): number {
  return ((clusterId & 0xff) << 16) | (local & 0xffff);
}

export function clusterOf(id: number): number {
  return (id >>> 16) & 0xff;
}

export function isReserved(id: number): boolean {
  return id > 0 && id < MIN_LOCAL_IDENTITY;
}
