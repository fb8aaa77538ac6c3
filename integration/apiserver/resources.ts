// The kinds this API server serves, described the way discovery, OpenAPI, Tables and
// strategic merge patch need them. Cilium kinds are served as if their CRDs were installed.

export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  /** Plural, lowercase: the URL segment and the etcd key segment. */
  resource: string;
  singular: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Whether the `status` subresource exists (status is then ignored on main-resource writes). */
  statusSubresource: boolean;
  /** Custom resources take JSON/merge patches only, as kube-apiserver's CRD handler does. */
  custom: boolean;
  /** Field paths beyond metadata.name/namespace usable in field selectors. */
  selectableFields: string[];
  /** Strategic merge keys by path ("spec.containers[].ports"); "" means a merged primitive set. */
  mergeKeys: Record<string, string>;
}

const METADATA_MERGE: Record<string, string> = {
  'metadata.ownerReferences': 'uid',
  'metadata.finalizers': '',
};

const CONTAINER_MERGE = (prefix: string): Record<string, string> => ({
  [prefix]: 'name',
  [`${prefix}[].ports`]: 'containerPort',
  [`${prefix}[].env`]: 'name',
  [`${prefix}[].volumeMounts`]: 'mountPath',
  [`${prefix}[].volumeDevices`]: 'devicePath',
});

const POD_MERGE: Record<string, string> = {
  ...CONTAINER_MERGE('spec.containers'),
  ...CONTAINER_MERGE('spec.initContainers'),
  ...CONTAINER_MERGE('spec.ephemeralContainers'),
  'spec.volumes': 'name',
  'spec.imagePullSecrets': 'name',
  'spec.hostAliases': 'ip',
  'spec.topologySpreadConstraints': 'topologyKey',
  'status.conditions': 'type',
  'status.podIPs': 'ip',
  'status.hostIPs': 'ip',
};

function kind(
  group: string,
  version: string,
  kindName: string,
  resource: string,
  namespaced: boolean,
  extra: Partial<ResourceType> = {},
): ResourceType {
  return {
    group,
    version,
    kind: kindName,
    resource,
    singular: kindName.toLowerCase(),
    namespaced,
    shortNames: [],
    categories: [],
    statusSubresource: false,
    custom: false,
    selectableFields: [],
    ...extra,
    mergeKeys: { ...METADATA_MERGE, ...(extra.mergeKeys ?? {}) },
  };
}

export const RESOURCES: readonly ResourceType[] = [
  kind('', 'v1', 'Namespace', 'namespaces', false, {
    shortNames: ['ns'],
    statusSubresource: true,
    selectableFields: ['status.phase'],
    mergeKeys: { 'status.conditions': 'type' },
  }),
  kind('', 'v1', 'Pod', 'pods', true, {
    shortNames: ['po'],
    categories: ['all'],
    statusSubresource: true,
    selectableFields: ['spec.nodeName', 'status.phase', 'status.podIP', 'spec.serviceAccountName'],
    mergeKeys: POD_MERGE,
  }),
  kind('', 'v1', 'Node', 'nodes', false, {
    shortNames: ['no'],
    statusSubresource: true,
    selectableFields: ['spec.unschedulable'],
    mergeKeys: {
      'spec.taints': 'key',
      'spec.podCIDRs': '',
      'status.addresses': 'type',
      'status.conditions': 'type',
    },
  }),
  kind('', 'v1', 'Service', 'services', true, {
    shortNames: ['svc'],
    categories: ['all'],
    statusSubresource: true,
    selectableFields: ['spec.clusterIP', 'spec.type'],
    mergeKeys: { 'spec.ports': 'port', 'status.conditions': 'type' },
  }),
  // kubectl describe lists a Pod's events; nothing in the lab writes them yet.
  kind('', 'v1', 'Event', 'events', true, {
    shortNames: ['ev'],
    selectableFields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  }),
  kind('', 'v1', 'ConfigMap', 'configmaps', true, { shortNames: ['cm'] }),
  kind('', 'v1', 'Secret', 'secrets', true, { selectableFields: ['type'] }),
  kind('discovery.k8s.io', 'v1', 'EndpointSlice', 'endpointslices', true),
  kind('networking.k8s.io', 'v1', 'NetworkPolicy', 'networkpolicies', true, {
    shortNames: ['netpol'],
  }),
  kind('coordination.k8s.io', 'v1', 'Lease', 'leases', true),
  kind('cilium.io', 'v2', 'CiliumNetworkPolicy', 'ciliumnetworkpolicies', true, {
    shortNames: ['cnp', 'ciliumnp'],
    categories: ['cilium', 'ciliumpolicy'],
    statusSubresource: true,
    custom: true,
  }),
  kind(
    'cilium.io',
    'v2',
    'CiliumClusterwideNetworkPolicy',
    'ciliumclusterwidenetworkpolicies',
    false,
    {
      shortNames: ['ccnp'],
      categories: ['cilium', 'ciliumpolicy'],
      statusSubresource: true,
      custom: true,
    },
  ),
  kind('cilium.io', 'v2', 'CiliumEndpoint', 'ciliumendpoints', true, {
    shortNames: ['cep', 'ciliumep'],
    categories: ['cilium'],
    custom: true,
  }),
  kind('cilium.io', 'v2', 'CiliumIdentity', 'ciliumidentities', false, {
    shortNames: ['ciliumid'],
    categories: ['cilium'],
    custom: true,
  }),
];

export const apiVersionOf = (r: ResourceType) => (r.group ? `${r.group}/${r.version}` : r.version);

export function findResource(
  group: string,
  version: string,
  resource: string,
): ResourceType | undefined {
  return RESOURCES.find(
    (r) => r.group === group && r.version === version && r.resource === resource,
  );
}

export function findKind(apiVersion: string, kindName: string): ResourceType | undefined {
  return RESOURCES.find((r) => apiVersionOf(r) === apiVersion && r.kind === kindName);
}

/** Groups in discovery order (core first), each with its versions. */
export function groupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of RESOURCES)
    seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
}

export function namespaceResource(): ResourceType {
  return findResource('', 'v1', 'namespaces')!;
}
