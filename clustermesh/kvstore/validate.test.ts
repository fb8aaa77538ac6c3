// Table-driven tests of remote-record validation: a hostile or broken remote c2 (ID 2) as seen
// from the local cluster c1 (ID 1), with a third cluster c3 (ID 3) already connected.
import test from 'ava';
import { cidrToIpNet, encodeClusterService, encodeIPIdentityPair, encodeNode } from './codecs.ts';
import {
  clusterConfigKey,
  identityKey,
  ipcacheKey,
  nodeKey,
  serviceKey,
  syncedKey,
  NODES_PREFIX,
} from './keys.ts';
import { MeshTable } from './mesh-view.ts';
import {
  RejectReason,
  type ClusterService,
  type IPIdentityPair,
  type NodeRecord,
} from './types.ts';
import {
  identityRange,
  validateRemoteKey,
  validateRemoteRecord,
  type RemoteRecord,
} from './validate.ts';

const REMOTE = { name: 'c2', id: 2 };

function mesh(): MeshTable {
  const m = new MeshTable({ name: 'c1', id: 1 });
  m.setCluster({ name: 'c3', id: 3 });
  m.setCluster(REMOTE);
  m.upsertNode({ cluster: 'c1', name: 'n1', podCidrs: ['10.1.1.0/24'], ips: ['172.18.0.2'] });
  m.upsertNode({ cluster: 'c2', name: 'n1', podCidrs: ['10.2.1.0/24'], ips: ['172.18.0.5'] });
  m.upsertNode({ cluster: 'c3', name: 'n1', podCidrs: ['10.3.1.0/24'], ips: ['172.18.0.7'] });
  m.setEndpoint('10.1.1.5', 'c1');
  return m;
}

const c2Id = identityRange(2).first + 5; // 131077 (c2, local 5)
const c3Id = identityRange(3).first + 5;

const labels = (cluster: string | null) =>
  `k8s:app=db;${cluster === null ? '' : `k8s:io.cilium.k8s.policy.cluster=${cluster};`}k8s:io.kubernetes.pod.namespace=prod;`;

const entry = (over: Partial<IPIdentityPair> = {}): IPIdentityPair => ({
  IP: '10.2.1.7',
  Mask: null,
  HostIP: '172.18.0.5',
  ID: c2Id,
  Key: 0,
  Metadata: '',
  K8sNamespace: 'prod',
  K8sPodName: 'db-0',
  ...over,
});
const ipc = (over: Partial<IPIdentityPair> = {}) => [
  ipcacheKey(over.IP ?? '10.2.1.7'),
  encodeIPIdentityPair(entry(over)),
];

const node = (over: Partial<NodeRecord> = {}, podCidr = '10.2.2.0/24'): NodeRecord => ({
  Name: 'n2',
  Cluster: 'c2',
  IPAddresses: [{ Type: 'InternalIP', IP: '172.18.0.6' }],
  IPv4AllocCIDR: cidrToIpNet(podCidr),
  IPv6AllocCIDR: null,
  ClusterID: 2,
  Source: 'kvstore',
  EncryptionKey: 0,
  WireguardPubKey: Buffer.alloc(32, 7).toString('base64'),
  ...over,
});
const nod = (over: Partial<NodeRecord> = {}, podCidr?: string) => [
  nodeKey('c2', 'n2'),
  encodeNode(node(over, podCidr)),
];

const svc = (over: Partial<ClusterService> = {}): ClusterService => ({
  cluster: 'c2',
  namespace: 'prod',
  name: 'db',
  frontends: { '10.96.0.10': { pg: { Protocol: 'TCP', Port: 5432 } } },
  backends: { '10.2.1.7': { pg: { Protocol: 'TCP', Port: 5432 } } },
  labels: {},
  selector: { app: 'db' },
  includeExternal: true,
  shared: true,
  clusterID: 2,
  ...over,
});
const svcKv = (over: Partial<ClusterService> = {}) => [
  serviceKey('c2', 'prod', 'db'),
  encodeClusterService(svc(over)),
];

type Case = [name: string, kv: string[], reason: RejectReason];
const REJECTED: Case[] = [
  ['unknown key', ['cilium/state/other/v1/x', '{}'], RejectReason.MalformedKey],
  ['config not JSON', [clusterConfigKey('c2'), '{"id":2'], RejectReason.MalformedJson],
  [
    'config of another cluster',
    [clusterConfigKey('c3'), '{"id":3}'],
    RejectReason.ClusterNameMismatch,
  ],
  ['config with the local ID', [clusterConfigKey('c2'), '{"id":1}'], RejectReason.ClusterIdLocal],
  [
    'config with an ID in use by c3',
    [clusterConfigKey('c2'), '{"id":3}'],
    RejectReason.ClusterIdInUse,
  ],
  ['config with ID 0', [clusterConfigKey('c2'), '{"id":0}'], RejectReason.ClusterIdInvalid],
  ['config with ID 256', [clusterConfigKey('c2'), '{"id":256}'], RejectReason.ClusterIdInvalid],
  [
    'config with another ID than the bundle',
    [clusterConfigKey('c2'), '{"id":9}'],
    RejectReason.ClusterIdMismatch,
  ],
  [
    'synced canary of c3',
    [syncedKey('c3', NODES_PREFIX), '2026-01-01T00:00:00Z'],
    RejectReason.ClusterNameMismatch,
  ],
  [
    'synced canary not a time',
    [syncedKey('c2', NODES_PREFIX), 'soon'],
    RejectReason.MalformedValue,
  ],
  [
    'identity labelled with the local cluster',
    [identityKey(c2Id), labels('c1')],
    RejectReason.IdentityClusterLabelMismatch,
  ],
  [
    'identity labelled with a third cluster',
    [identityKey(c2Id), labels('c3')],
    RejectReason.IdentityClusterLabelMismatch,
  ],
  [
    'identity without cluster label',
    [identityKey(c2Id), labels(null)],
    RejectReason.IdentityClusterLabelMissing,
  ],
  ["identity in c3's range", [identityKey(c3Id), labels('c2')], RejectReason.IdentityOutOfRange],
  [
    "identity in the local cluster's range",
    [identityKey(identityRange(1).first), labels('c2')],
    RejectReason.IdentityOutOfRange,
  ],
  [
    'identity in cluster 0 range',
    [identityKey(1000), labels('c2')],
    RejectReason.IdentityOutOfRange,
  ],
  ['reserved identity key', [identityKey(1), labels('c2')], RejectReason.IdentityReserved],
  [
    'identity with a reserved:host label',
    [identityKey(c2Id), 'reserved:host=;' + labels('c2')],
    RejectReason.IdentityReservedLabel,
  ],
  [
    'identity with a cidr label',
    [identityKey(c2Id), 'cidr:10.0.0.0/8=;' + labels('c2')],
    RejectReason.IdentityReservedLabel,
  ],
  [
    'identity with a second cluster label of another source',
    [identityKey(c2Id), labels('c2') + 'container:io.cilium.k8s.policy.cluster=c1;'],
    RejectReason.IdentityClusterLabelMismatch,
  ],
  [
    'identity labels with a repeated key',
    [identityKey(c2Id), 'k8s:a=1;k8s:a=2;'],
    RejectReason.MalformedValue,
  ],
  ['ipcache with reserved identity (world)', ipc({ ID: 2 }), RejectReason.IdentityReserved],
  ['ipcache with reserved identity (remote-node)', ipc({ ID: 6 }), RejectReason.IdentityReserved],
  ["ipcache with an identity of c3's range", ipc({ ID: c3Id }), RejectReason.IdentityOutOfRange],
  ['ipcache claiming a local pod IP', ipc({ IP: '10.1.1.5' }), RejectReason.IpOwnedElsewhere],
  ['ipcache IP outside c2 pod CIDRs', ipc({ IP: '10.9.0.1' }), RejectReason.IpOutsidePodCidrs],
  ["ipcache IP in c3's pod CIDR", ipc({ IP: '10.3.1.9' }), RejectReason.IpOutsidePodCidrs],
  [
    'ipcache prefix wider than the pod CIDR',
    [
      ipcacheKey('10.2.0.0', 16),
      encodeIPIdentityPair(entry({ IP: '10.2.0.0', Mask: cidrToIpNet('10.2.0.0/16').Mask })),
    ],
    RejectReason.IpOutsidePodCidrs,
  ],
  ['ipcache HostIP of a local node', ipc({ HostIP: '172.18.0.2' }), RejectReason.HostIpUnknown],
  ['ipcache without HostIP', ipc({ HostIP: '' }), RejectReason.HostIpUnknown],
  [
    'ipcache key and IP differ',
    [ipcacheKey('10.2.1.8'), encodeIPIdentityPair(entry())],
    RejectReason.KeyValueMismatch,
  ],
  [
    'ipcache IPv4-mapped local pod key',
    [ipcacheKey('::ffff:10.1.1.5'), encodeIPIdentityPair(entry({ IP: '::ffff:10.1.1.5' }))],
    RejectReason.IpOwnedElsewhere,
  ],
  ['ipcache not JSON', [ipcacheKey('10.2.1.7'), 'IP=10.2.1.7'], RejectReason.MalformedJson],
  [
    'ipcache ID a string',
    [ipcacheKey('10.2.1.7'), '{"IP":"10.2.1.7","ID":"131077"}'],
    RejectReason.MalformedValue,
  ],
  ['node key of c3', [nodeKey('c3', 'n2'), encodeNode(node())], RejectReason.ClusterNameMismatch],
  ['node value naming c1', nod({ Cluster: 'c1' }), RejectReason.ClusterNameMismatch],
  ['node name differs from key', nod({ Name: 'n9' }), RejectReason.KeyValueMismatch],
  ['node with ClusterID 3', nod({ ClusterID: 3 }), RejectReason.ClusterIdMismatch],
  ['node pod CIDR covering the local one', nod({}, '10.1.0.0/16'), RejectReason.PodCidrOverlap],
  ["node pod CIDR inside c3's", nod({}, '10.3.1.128/25'), RejectReason.PodCidrOverlap],
  ['node pod CIDR covering node IPs', nod({}, '172.18.0.0/24'), RejectReason.PodCidrOverlap],
  [
    'node IP of a local node',
    nod({ IPAddresses: [{ Type: 'InternalIP', IP: '172.18.0.2' }] }),
    RejectReason.NodeIpOverlap,
  ],
  [
    'node IP inside a local pod CIDR',
    nod({ IPAddresses: [{ Type: 'InternalIP', IP: '10.1.1.9' }] }),
    RejectReason.NodeIpOverlap,
  ],
  ['node health IP of a c3 node', nod({ IPv4HealthIP: '172.18.0.7' }), RejectReason.NodeIpOverlap],
  ['node not JSON', [nodeKey('c2', 'n2'), '<node/>'], RejectReason.MalformedJson],
  ['service naming c1', svcKv({ cluster: 'c1' }), RejectReason.ClusterNameMismatch],
  [
    'service key of c3',
    [serviceKey('c3', 'prod', 'db'), encodeClusterService(svc())],
    RejectReason.ClusterNameMismatch,
  ],
  ['service name differs from key', svcKv({ name: 'web' }), RejectReason.KeyValueMismatch],
  ['service with clusterID 1', svcKv({ clusterID: 1 }), RejectReason.ClusterIdMismatch],
  [
    'service with a bad backend IP',
    svcKv({ backends: { 'not-an-ip': {} } }),
    RejectReason.MalformedValue,
  ],
];

for (const [name, [key, value], reason] of REJECTED) {
  test(`rejects ${name}: ${reason}`, (t) => {
    const r = validateRemoteRecord(REMOTE, mesh(), key!, value!);
    if (r.ok) return t.fail(`accepted ${key} = ${value}`);
    t.is(r.error.reason, reason, r.error.detail);
    t.true(r.error.detail.length > 10);
  });
}

test('every reject reason has at least one table case', (t) => {
  const covered = new Set(REJECTED.map(([, , reason]) => reason));
  t.deepEqual(
    Object.values(RejectReason).filter((r) => !covered.has(r)),
    [],
  );
});

const ACCEPTED: Array<[string, string[], RemoteRecord['kind']]> = [
  [
    'its cluster config',
    [
      clusterConfigKey('c2'),
      '{"id":2,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255}}',
    ],
    'cluster-config',
  ],
  ['its synced canary', [syncedKey('c2', NODES_PREFIX), '2026-11-26T12:00:00Z'], 'synced'],
  ['an identity of its range with its label', [identityKey(c2Id), labels('c2')], 'identity'],
  [
    'the last identity of its range',
    [identityKey(identityRange(2).last), labels('c2')],
    'identity',
  ],
  [
    "the first identity of its range (Cilium's minimum)",
    [identityKey(2 << 16), labels('c2')],
    'identity',
  ],
  [
    'identity labels in another writer order',
    [identityKey(c2Id), 'k8s:z=1;' + labels('c2')],
    'identity',
  ],
  ['an ipcache entry in its pod CIDR on its node', ipc(), 'ipcache'],
  ['a new node that overlaps nothing', nod(), 'node'],
  [
    'an update of a known node (no self-overlap)',
    [
      nodeKey('c2', 'n1'),
      encodeNode(
        node(
          { Name: 'n1', IPAddresses: [{ Type: 'InternalIP', IP: '172.18.0.5' }] },
          '10.2.1.0/24',
        ),
      ),
    ],
    'node',
  ],
  ['its global service', svcKv(), 'service'],
];
for (const [name, [key, value], kind] of ACCEPTED) {
  test(`accepts ${name}`, (t) => {
    const r = validateRemoteRecord(REMOTE, mesh(), key!, value!);
    if (!r.ok) return t.fail(`${r.error.reason}: ${r.error.detail}`);
    t.is(r.value.kind, kind);
  });
}

test('an ipcache entry becomes valid once its node is known, not before', (t) => {
  const m = mesh();
  const [key, value] = ipc({ IP: '10.2.2.9', HostIP: '172.18.0.6' });
  t.is(
    (validateRemoteRecord(REMOTE, m, key!, value!) as { error: { reason: string } }).error.reason,
    'ip-outside-pod-cidrs',
  );
  const accepted = validateRemoteRecord(REMOTE, m, ...(nod() as [string, string]));
  if (!accepted.ok || accepted.value.kind !== 'node') return t.fail('node refused');
  m.upsertNode({
    cluster: 'c2',
    name: 'n2',
    podCidrs: accepted.value.podCidrs,
    ips: accepted.value.ips,
  });
  t.true(validateRemoteRecord(REMOTE, m, key!, value!).ok);
});

test('deletions: keys naming another cluster are refused', (t) => {
  t.true(validateRemoteKey(REMOTE, nodeKey('c2', 'n1')).ok);
  const r = validateRemoteKey(REMOTE, nodeKey('c1', 'n1'));
  t.false(r.ok);
  if (!r.ok) t.is(r.error.reason, 'cluster-name-mismatch');
});

test('a reconnecting remote keeps its own ID (not "in use" by itself)', (t) => {
  const r = validateRemoteRecord(REMOTE, mesh(), clusterConfigKey('c2'), '{"id":2}');
  t.true(r.ok);
});
