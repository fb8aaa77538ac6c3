import test from 'ava';
import fc from 'fast-check';
import {
  cidrToIpNet,
  decodeClusterConfig,
  decodeClusterService,
  decodeIPIdentityPair,
  decodeNode,
  decodeSyncedTime,
  encodeClusterConfig,
  encodeClusterService,
  encodeIPIdentityPair,
  encodeNode,
  encodeSyncedTime,
  ipNetToCidr,
  nodePodCidrs,
} from './codecs.ts';
import type { ClusterConfig, ClusterService, IPIdentityPair, NodeRecord } from './types.ts';

function must<T>(r: { ok: true; value: T } | { ok: false; error: { detail: string } }): T {
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
}

// ---- goldens taken from Cilium's tests and DESIGN.md -----------------------------------------

test('golden: cluster config of Cilium clustermesh-apiserver script test', (t) => {
  const text = `{
  "id": 3,
  "capabilities": {
    "syncedCanaries": true,
    "maxConnectedClusters": 255,
    "serviceExportsEnabled": false
  }
}`;
  const c = must(decodeClusterConfig(text));
  t.deepEqual(c, {
    id: 3,
    capabilities: { syncedCanaries: true, maxConnectedClusters: 255, serviceExportsEnabled: false },
  });
  t.deepEqual(JSON.parse(encodeClusterConfig(c)), JSON.parse(text));
});

test('golden: DESIGN.md cluster config encodes byte for byte', (t) => {
  const text = '{"id":3,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255}}';
  t.is(encodeClusterConfig(must(decodeClusterConfig(text))), text);
});

test("golden: Cilium's net.IPNet wire form of alloc CIDRs (node_test TestNodeCIDRFieldsWireGolden)", (t) => {
  t.is(JSON.stringify(cidrToIpNet('10.244.1.0/24')), '{"IP":"10.244.1.0","Mask":"////AA=="}');
  t.is(
    JSON.stringify(cidrToIpNet('fd00::/64')),
    '{"IP":"fd00::","Mask":"//////////8AAAAAAAAAAA=="}',
  );
  t.deepEqual(ipNetToCidr({ IP: '10.244.1.0', Mask: '////AA==' }), {
    ok: true,
    value: '10.244.1.0/24',
  });
});

test('golden: legacy node payload of Cilium node_test decodes with all four pod CIDRs', (t) => {
  const legacy = `{
    "Name": "node-1",
    "Cluster": "default",
    "ClusterID": 1,
    "IPv4AllocCIDR": {"IP":"10.244.1.0","Mask":"////AA=="},
    "IPv6AllocCIDR": {"IP":"fd00::","Mask":"//////////8AAAAAAAAAAA=="},
    "IPv4SecondaryAllocCIDRs": [{"IP":"10.244.2.0","Mask":"////AA=="}],
    "IPv6SecondaryAllocCIDRs": [{"IP":"fd01::","Mask":"//////////8AAAAAAAAAAA=="}]
  }`;
  const n = must(decodeNode(legacy));
  t.is(n.Name, 'node-1');
  t.deepEqual(nodePodCidrs(n), ['10.244.1.0/24', '10.244.2.0/24', 'fd00::/64', 'fd01::/64']);
  const raw = JSON.parse(encodeNode(n));
  t.deepEqual(raw.IPv4AllocCIDR, { IP: '10.244.1.0', Mask: '////AA==' });
  t.is(raw.IPv6AllocCIDR.Mask, '//////////8AAAAAAAAAAA==');
});

test('golden: a node without alloc CIDRs marshals them as null, like a nil *cidr.CIDR', (t) => {
  const raw = JSON.parse(
    encodeNode(must(decodeNode('{"Name":"node-2","Cluster":"default","ClusterID":0}'))),
  );
  t.is(raw.IPv4AllocCIDR, null);
  t.is(raw.IPv6AllocCIDR, null);
});

test('golden: DESIGN.md ipcache entry encodes byte for byte', (t) => {
  const text =
    '{"IP":"10.2.1.7","Mask":null,"HostIP":"172.18.0.5","ID":131077,"Key":0,"Metadata":"","K8sNamespace":"prod","K8sPodName":"db-0","K8sServiceAccount":"default","NamedPorts":[{"Name":"pg","Port":5432,"Protocol":"TCP"}]}';
  const p = must(decodeIPIdentityPair(text));
  t.is(p.ID, 131077);
  t.is(encodeIPIdentityPair(p), text);
});

test("golden: Cilium's IPIdentityPair with omitempty fields absent", (t) => {
  const text =
    '{"IP":"10.0.0.1","Mask":null,"HostIP":"192.168.1.10","ID":65538,"Key":0,"Metadata":""}';
  t.is(encodeIPIdentityPair(must(decodeIPIdentityPair(text))), text);
});

test("golden: a ClusterService as Cilium's Marshal writes it (nil maps are null)", (t) => {
  const text =
    '{"cluster":"default","namespace":"bar","name":"foo","frontends":null,"backends":null,"labels":null,"selector":null,"includeExternal":false,"shared":false,"clusterID":0}';
  const s = must(decodeClusterService(text));
  t.deepEqual(s.frontends, {});
  t.is(s.name, 'foo');
});

test('golden: DESIGN.md service encodes byte for byte', (t) => {
  const text =
    '{"cluster":"c2","namespace":"prod","name":"db","frontends":{"10.96.0.10":{"pg":{"Protocol":"TCP","Port":5432}}},"backends":{"10.2.1.7":{"pg":{"Protocol":"TCP","Port":5432}},"abcd::1":{"pg":{"Protocol":"TCP","Port":5432}}},"labels":{},"selector":{"app":"db"},"includeExternal":true,"shared":true,"clusterID":2}';
  t.is(encodeClusterService(must(decodeClusterService(text))), text);
});

test('synced canary: RFC 3339 as Go writes it', (t) => {
  t.is(encodeSyncedTime(new Date('2026-11-26T12:00:00.123Z')), '2026-11-26T12:00:00Z');
  t.is(
    must(decodeSyncedTime('2024-05-04T05:49:30+02:00')).toISOString(),
    '2024-05-04T03:49:30.000Z',
  );
  t.false(decodeSyncedTime('yesterday').ok);
  t.false(decodeSyncedTime('2024-13-45T99:00:00Z').ok);
});

// ---- round trips ------------------------------------------------------------------------------

const name = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/);
const ip = fc.oneof(fc.ipV4(), fc.constantFrom('fd00::1', '2001:db8::7', '::1'));
const strMap = fc.dictionary(
  fc.stringMatching(/^[a-z][a-z0-9./-]{0,15}$/),
  fc.string({ maxLength: 10 }),
  { maxKeys: 3 },
);
const v4Cidr = fc
  .tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 }))
  .map(([a, l]) => cidrToIpNet(`${a}/${l}`));
const v6Cidr = fc.integer({ min: 0, max: 128 }).map((l) => cidrToIpNet(`fd00:1234::/${l}`));
const wgKey = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => Buffer.from(b).toString('base64'));

const clusterConfig: fc.Arbitrary<ClusterConfig> = fc.record(
  {
    id: fc.integer({ min: 0, max: 0xffffffff }),
    capabilities: fc.record(
      { syncedCanaries: fc.boolean(), maxConnectedClusters: fc.constantFrom(255, 511) },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['id'] },
);

const pair: fc.Arbitrary<IPIdentityPair> = fc.record({
  IP: ip,
  Mask: fc.constant(null),
  HostIP: ip,
  ID: fc.integer({ min: 0, max: (1 << 24) - 1 }),
  Key: fc.integer({ min: 0, max: 255 }),
  Metadata: fc.string({ maxLength: 8 }),
  K8sNamespace: name,
  K8sPodName: name,
  K8sServiceAccount: name,
  NamedPorts: fc.array(
    fc.record({
      Name: name,
      Port: fc.integer({ min: 1, max: 65535 }),
      Protocol: fc.constantFrom('TCP', 'UDP', 'SCTP'),
    }),
    { minLength: 1, maxLength: 3 },
  ),
});

const node: fc.Arbitrary<NodeRecord> = fc.record({
  Name: name,
  Cluster: name,
  IPAddresses: fc.array(
    fc.record({ Type: fc.constantFrom('InternalIP', 'ExternalIP', 'CiliumInternalIP'), IP: ip }),
    { maxLength: 3 },
  ),
  IPv4AllocCIDR: fc.option(v4Cidr, { nil: null }),
  IPv4SecondaryAllocCIDRs: fc.option(fc.array(v4Cidr, { maxLength: 2 }), { nil: null }),
  IPv6AllocCIDR: fc.option(v6Cidr, { nil: null }),
  IPv6SecondaryAllocCIDRs: fc.option(fc.array(v6Cidr, { maxLength: 2 }), { nil: null }),
  IPv4HealthIP: fc.oneof(fc.constant(''), fc.ipV4()),
  IPv6HealthIP: fc.constant(''),
  IPv4IngressIP: fc.constant(''),
  IPv6IngressIP: fc.constant(''),
  ClusterID: fc.integer({ min: 0, max: 255 }),
  Source: fc.constantFrom('local', 'kvstore', 'custom-resource'),
  EncryptionKey: fc.integer({ min: 0, max: 255 }),
  Labels: fc.option(strMap, { nil: null }),
  Annotations: fc.option(strMap, { nil: null }),
  NodeIdentity: fc.integer({ min: 0, max: 0xffffffff }),
  WireguardPubKey: fc.oneof(fc.constant(''), wgKey),
  BootID: fc.uuid(),
});

const ports = fc.dictionary(
  name,
  fc.record({ Protocol: fc.constantFrom('TCP', 'UDP'), Port: fc.integer({ min: 0, max: 65535 }) }),
  { maxKeys: 2 },
);
const service: fc.Arbitrary<ClusterService> = fc.record({
  cluster: name,
  namespace: name,
  name,
  frontends: fc.dictionary(fc.ipV4(), ports, { maxKeys: 2 }),
  backends: fc.dictionary(ip, ports, { maxKeys: 3 }),
  labels: strMap,
  selector: strMap,
  includeExternal: fc.boolean(),
  shared: fc.boolean(),
  clusterID: fc.integer({ min: 0, max: 255 }),
});

function roundTrip<T>(
  t: import('ava').ExecutionContext,
  arb: fc.Arbitrary<T>,
  enc: (v: T) => string,
  dec: (s: string) => unknown,
): void {
  fc.assert(
    fc.property(arb, (v) => {
      const text = enc(v);
      const back = dec(text) as { ok: boolean; value?: T; error?: unknown };
      t.true(back.ok, JSON.stringify(back.error));
      t.deepEqual(back.value, v);
      t.is(enc(back.value as T), text);
    }),
    { numRuns: 200 },
  );
}

test('round trip: cluster config', (t) =>
  roundTrip(t, clusterConfig, encodeClusterConfig, decodeClusterConfig));
test('round trip: ipcache entry', (t) =>
  roundTrip(t, pair, encodeIPIdentityPair, decodeIPIdentityPair));
test('round trip: node', (t) => roundTrip(t, node, encodeNode, decodeNode));
// Isthmus' rotation fields, each present or absent (absent = none, never written as null)
const wgPort = fc.integer({ min: 1, max: 65535 });
const rotating = fc
  .tuple(
    node,
    fc.record(
      { WireguardPort: wgPort, WireguardPubKeyNext: wgKey, WireguardPortNext: wgPort },
      { requiredKeys: [] },
    ),
  )
  .map(([n, extra]): NodeRecord => ({ ...n, ...extra }));
test('round trip: node with rotation fields', (t) =>
  roundTrip(t, rotating, encodeNode, decodeNode));
test('round trip: service', (t) =>
  roundTrip(t, service, encodeClusterService, decodeClusterService));
test('round trip: synced time (whole seconds)', (t) =>
  roundTrip(
    t,
    fc
      .date({
        min: new Date('1970-01-01T00:00:00Z'),
        max: new Date('9999-12-31T23:59:59Z'),
        noInvalidDate: true,
      })
      .map((d) => new Date(Math.floor(d.getTime() / 1000) * 1000)),
    encodeSyncedTime,
    decodeSyncedTime,
  ));

test('round trip: CIDR <-> net.IPNet', (t) => {
  fc.assert(
    fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (a, l) => {
      const net = cidrToIpNet(`${a}/${l}`);
      const cidr = must(ipNetToCidr(net));
      t.deepEqual(cidrToIpNet(cidr), net);
      t.is(cidr.split('/')[1], String(l));
    }),
  );
});

// ---- malformed values -------------------------------------------------------------------------

const MALFORMED: Array<[string, () => { ok: boolean; error?: { reason: string } }, string]> = [
  ['config not JSON', () => decodeClusterConfig('{"id":'), 'malformed-json'],
  ['config id a string', () => decodeClusterConfig('{"id":"3"}'), 'malformed-value'],
  [
    'ipcache ID negative',
    () => decodeIPIdentityPair('{"IP":"10.0.0.1","ID":-1}'),
    'malformed-value',
  ],
  [
    'ipcache IP not an address',
    () => decodeIPIdentityPair('{"IP":"10.1","ID":70000}'),
    'malformed-value',
  ],
  [
    'ipcache HostIP with zone',
    () => decodeIPIdentityPair('{"IP":"fd00::1","HostIP":"fe80::1%eth0","ID":70000}'),
    'malformed-value',
  ],
  [
    'ipcache bad Mask',
    () => decodeIPIdentityPair('{"IP":"10.0.0.0","Mask":"/wD/AA==","ID":70000}'),
    'malformed-value',
  ],
  ['node without Name', () => decodeNode('{"Cluster":"c2","ClusterID":2}'), 'malformed-value'],
  [
    'node CIDR host bits',
    () =>
      decodeNode(
        '{"Name":"n","Cluster":"c2","ClusterID":2,"IPv4AllocCIDR":{"IP":"10.0.0.1","Mask":"////AA=="}}',
      ),
    'malformed-value',
  ],
  [
    'node mask wrong size',
    () =>
      decodeNode(
        '{"Name":"n","Cluster":"c2","ClusterID":2,"IPv4AllocCIDR":{"IP":"10.0.0.0","Mask":"//////////8AAAAAAAAAAA=="}}',
      ),
    'malformed-value',
  ],
  [
    'node bad WireGuard key',
    () => decodeNode('{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPubKey":"abc"}'),
    'malformed-value',
  ],
  [
    'node next WireGuard key not 32 bytes',
    () =>
      decodeNode(
        `{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPubKeyNext":"${Buffer.alloc(31).toString('base64')}"}`,
      ),
    'malformed-value',
  ],
  [
    'node WireGuard port 0',
    () => decodeNode('{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPort":0}'),
    'malformed-value',
  ],
  [
    'node next WireGuard port above 65535',
    () => decodeNode('{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPortNext":65536}'),
    'malformed-value',
  ],
  [
    'node WireGuard port as text',
    () => decodeNode('{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPort":"51871"}'),
    'malformed-value',
  ],
  [
    'node address not IP',
    () =>
      decodeNode(
        '{"Name":"n","Cluster":"c2","ClusterID":2,"IPAddresses":[{"Type":"InternalIP","IP":"x"}]}',
      ),
    'malformed-value',
  ],
  [
    'service backend IPv6 zone',
    () =>
      decodeClusterService(
        '{"cluster":"c","namespace":"a","name":"b","clusterID":1,"backends":{"dcba::1%zone":{}}}',
      ),
    'malformed-value',
  ],
  [
    'service port out of range',
    () =>
      decodeClusterService(
        '{"cluster":"c","namespace":"a","name":"b","clusterID":1,"frontends":{"10.0.0.1":{"p":{"Protocol":"TCP","Port":70000}}}}',
      ),
    'malformed-value',
  ],
  ['service is an array', () => decodeClusterService('[]'), 'malformed-value'],
];
for (const [what, run, reason] of MALFORMED) {
  test(`decode rejects ${what} as ${reason}`, (t) => {
    const r = run();
    t.false(r.ok);
    t.is(r.error?.reason, reason);
  });
}

test('node rotation fields: absent means none; present ones decode as written', (t) => {
  const key = Buffer.alloc(32, 3).toString('base64');
  const next = Buffer.alloc(32, 4).toString('base64');
  const plain = must(
    decodeNode(`{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPubKey":"${key}"}`),
  );
  t.false(
    'WireguardPort' in plain || 'WireguardPubKeyNext' in plain || 'WireguardPortNext' in plain,
  );
  t.false(encodeNode(plain).includes('WireguardPort'), 'nothing written for absent fields');
  const r = must(
    decodeNode(
      JSON.stringify({
        Name: 'n',
        Cluster: 'c2',
        ClusterID: 2,
        WireguardPubKey: key,
        WireguardPort: 51872,
        WireguardPubKeyNext: next,
        WireguardPortNext: 51871,
      }),
    ),
  );
  t.like(r, { WireguardPort: 51872, WireguardPubKeyNext: next, WireguardPortNext: 51871 });
  const empty = must(
    decodeNode('{"Name":"n","Cluster":"c2","ClusterID":2,"WireguardPubKeyNext":""}'),
  );
  t.false('WireguardPubKeyNext' in empty, 'an empty next key is no next key');
});
