import test from 'ava';
import fc from 'fast-check';
import {
  clusterConfigKey,
  identityKey,
  ipcacheKey,
  KeyBuildError,
  nodeKey,
  parseKey,
  serviceKey,
  syncedKey,
  NODES_PREFIX,
} from './keys.ts';

const clusterName = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/);
const segment = fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,40}$/);

test('builders produce the layout of DESIGN.md', (t) => {
  t.is(clusterConfigKey('c2'), 'cilium/cluster-config/c2');
  t.is(syncedKey('c2', NODES_PREFIX), 'cilium/synced/c2/cilium/state/nodes/v1');
  t.is(identityKey(131077), 'cilium/state/identities/v1/id/131077');
  t.is(ipcacheKey('10.2.1.7'), 'cilium/state/ip/v1/default/10.2.1.7');
  t.is(ipcacheKey('10.2.0.0', 16), 'cilium/state/ip/v1/default/10.2.0.0/16');
  t.is(nodeKey('c2', 'node-1'), 'cilium/state/nodes/v1/c2/node-1');
  t.is(serviceKey('c2', 'prod', 'db'), 'cilium/state/services/v1/c2/prod/db');
});

test('builders refuse values that cannot form a key', (t) => {
  for (const build of [
    () => clusterConfigKey('C2'),
    () => clusterConfigKey('-c2'),
    () => clusterConfigKey('a'.repeat(33)),
    () => nodeKey('c2', 'a/b'),
    () => serviceKey('c2', '', 'x'),
    () => identityKey(0),
    () => identityKey(1 << 24),
    () => ipcacheKey('10.0.0.300'),
    () => ipcacheKey('10.0.0.0', 33),
    () => syncedKey('c2', '/x'),
  ]) {
    const e = t.throws(build, { instanceOf: KeyBuildError });
    t.is(e?.code, 'ERR_KVSTORE_KEY');
  }
});

test('parseKey inverts every builder', (t) => {
  fc.assert(
    fc.property(
      clusterName,
      segment,
      segment,
      fc.integer({ min: 1, max: (1 << 24) - 1 }),
      fc.ipV4(),
      (c, a, b, id, ip) => {
        t.deepEqual(parseKey(clusterConfigKey(c)), {
          ok: true,
          value: { kind: 'cluster-config', cluster: c },
        });
        t.deepEqual(parseKey(syncedKey(c, NODES_PREFIX)), {
          ok: true,
          value: { kind: 'synced', cluster: c, prefix: NODES_PREFIX },
        });
        t.deepEqual(parseKey(identityKey(id)), { ok: true, value: { kind: 'identity', id } });
        t.deepEqual(parseKey(ipcacheKey(ip)), {
          ok: true,
          value: { kind: 'ipcache', ip, prefixLength: null },
        });
        t.deepEqual(parseKey(nodeKey(c, a)), {
          ok: true,
          value: { kind: 'node', cluster: c, node: a },
        });
        t.deepEqual(parseKey(serviceKey(c, a, b)), {
          ok: true,
          value: { kind: 'service', cluster: c, namespace: a, name: b },
        });
      },
    ),
  );
});

const malformed = [
  'cilium/state/unknown/v1/x',
  'cilium/cluster-config/',
  'cilium/cluster-config/UPPER',
  'cilium/cluster-config/c2/extra',
  'cilium/synced/c2',
  'cilium/state/identities/v1/id/abc',
  'cilium/state/identities/v1/id/0',
  'cilium/state/identities/v1/id/007',
  'cilium/state/identities/v1/id/16777216',
  'cilium/state/ip/v1/default/not-an-ip',
  'cilium/state/ip/v1/default/10.0.0.0/40',
  'cilium/state/nodes/v1/c2',
  'cilium/state/nodes/v1/c2/n1/extra',
  'cilium/state/services/v1/c2/ns',
  'other/prefix',
];
for (const key of malformed) {
  test(`parseKey rejects ${JSON.stringify(key)} as malformed-key`, (t) => {
    const r = parseKey(key);
    t.false(r.ok);
    if (!r.ok) t.is(r.error.reason, 'malformed-key');
  });
}
