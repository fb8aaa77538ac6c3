import test from 'ava';
import { globalSettings, selectBackends } from './affinity.ts';
import type { Backend } from './types.ts';

const b = (addr: string, ready = true): Backend => ({
  addr,
  ports: { http: { port: 8080, protocol: 'TCP' } },
  ready,
});
const remote = (bs: Backend[]) => new Map([['c2', bs]]);
const addrs = (r: Array<{ cluster: string; backend: Backend }>) =>
  r.map((x) => `${x.cluster || 'local'}:${x.backend.addr}`);
const g = (affinity?: string, extra: Record<string, string> = {}) =>
  globalSettings({
    'service.cilium.io/global': 'true',
    ...(affinity && { 'service.cilium.io/affinity': affinity }),
    ...extra,
  });

test('annotations: shared defaults to true when global, affinity to none; bad values reported', (t) => {
  t.like(globalSettings({}), { global: false, shared: false, affinity: 'none' });
  t.like(g(), { global: true, shared: true, affinity: 'none' });
  t.like(g('local', { 'service.cilium.io/shared': 'false' }), { shared: false, affinity: 'local' });
  t.deepEqual(g('nearest').invalid, ['service.cilium.io/affinity=nearest']);
  t.is(g('nearest').affinity, 'none');
});

test('none: every ready backend of every cluster', (t) => {
  t.deepEqual(
    addrs(selectBackends(g(), { local: [b('1'), b('2', false)], remote: remote([b('3')]) })),
    ['local:1', 'c2:3'],
  );
});

test('local: remote only while no local backend is ready', (t) => {
  t.deepEqual(addrs(selectBackends(g('local'), { local: [b('1')], remote: remote([b('3')]) })), [
    'local:1',
  ]);
  t.deepEqual(
    addrs(selectBackends(g('local'), { local: [b('1', false)], remote: remote([b('3')]) })),
    ['c2:3'],
  );
  t.deepEqual(addrs(selectBackends(g('local'), { local: [], remote: new Map() })), []);
});

test('remote: the mirror of local', (t) => {
  t.deepEqual(addrs(selectBackends(g('remote'), { local: [b('1')], remote: remote([b('3')]) })), [
    'c2:3',
  ]);
  t.deepEqual(
    addrs(selectBackends(g('remote'), { local: [b('1')], remote: remote([b('3', false)]) })),
    ['local:1'],
  );
});

test('a non-global service ignores remote backends; shared=false still uses them', (t) => {
  t.deepEqual(
    addrs(selectBackends(globalSettings({}), { local: [b('1')], remote: remote([b('3')]) })),
    ['local:1'],
  );
  const notShared = g('none', { 'service.cilium.io/shared': 'false' });
  t.deepEqual(addrs(selectBackends(notShared, { local: [b('1')], remote: remote([b('3')]) })), [
    'local:1',
    'c2:3',
  ]);
});
