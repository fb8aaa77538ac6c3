// Endpoint manager logic on fakes: idempotence, rollback, restore after restart, error codes.
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeEndpointDatapath } from './fake-datapath.ts';
import { FakePodLinks } from './fake-links.ts';
import { EndpointManager } from './manager.ts';
import type { EndpointRequest, EndpointResponse } from './types.ts';

function setup(t: { teardown(fn: () => void): void }, podCIDR = '10.1.0.0/24') {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-ep-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // the manager only needs each pod's namespace path to exist
  const netns = (id: string) => {
    mkdirSync(join(dir, `ns-${id}`), { recursive: true });
    return join(dir, `ns-${id}`);
  };
  const datapath = new FakeEndpointDatapath();
  const links = new FakePodLinks();
  const make = () => new EndpointManager({ podCIDR, stateDir: dir, datapath, links });
  return { dir, netns, datapath, links, manager: make(), make };
}

const add = (containerId: string, netns: string): EndpointRequest => ({
  op: 'add',
  containerId,
  netns,
  ifname: 'eth0',
  podNamespace: 'prod',
  podName: containerId,
});
const errorCode = (r: EndpointResponse) => (r.ok ? 0 : r.error.code);

test('ADD allocates, links and attaches; ADD again returns the same endpoint without touching the kernel', async (t) => {
  const { manager, netns, datapath, links } = setup(t);
  const first = await manager.handle(add('c1', netns('c1')));
  if (!first.ok || !first.result) return t.fail(JSON.stringify(first));
  t.like(first.result, {
    gateway: '10.1.0.1',
    endpoint: { id: 1, ip: '10.1.0.2', podIfname: 'eth0', identity: 5, podNamespace: 'prod' },
  });
  t.regex(first.result.endpoint.hostIfname, /^lxc[0-9a-f]{11}$/);
  t.deepEqual([...datapath.attached.keys()], [1]);
  const again = await manager.handle(add('c1', netns('c1')));
  t.deepEqual(again, first);
  t.is(links.creates, 1);
});

test('a datapath attach failure rolls back the veth and the address', async (t) => {
  const { manager, netns, datapath, links } = setup(t);
  datapath.failAttach = new Error('map full');
  const r = await manager.handle(add('c1', netns('c1')));
  t.is(errorCode(r), 102);
  t.like(r, { error: { details: 'map full' } });
  t.is(links.hosts.size, 0);
  t.is(manager.ipam.allocations().size, 0);
  t.deepEqual(manager.list(), []);
  datapath.failAttach = undefined;
  const ok = await manager.handle(add('c1', netns('c1')));
  t.like(ok, { ok: true, result: { endpoint: { ip: '10.1.0.3' } } });
});

test('a link failure rolls back the address', async (t) => {
  const { manager, netns, links } = setup(t);
  links.failCreate = new Error('RTNETLINK answers: File exists');
  t.is(errorCode(await manager.handle(add('c1', netns('c1')))), 102);
  t.is(manager.ipam.allocations().size, 0);
});

test('DEL removes veth, datapath entry and address; DEL twice and of an unknown container succeed', async (t) => {
  const { manager, netns, datapath, links } = setup(t);
  await manager.handle(add('c1', netns('c1')));
  const del: EndpointRequest = { op: 'del', containerId: 'c1', ifname: 'eth0' };
  t.deepEqual(await manager.handle(del), { ok: true });
  t.deepEqual(await manager.handle(del), { ok: true });
  t.deepEqual(await manager.handle({ op: 'del', containerId: 'nobody', ifname: 'eth0' }), {
    ok: true,
  });
  t.is(links.hosts.size, 0);
  t.is(datapath.attached.size, 0);
  t.is(manager.ipam.allocations().size, 0);
});

test('CHECK: ok, unknown container (3), missing veth or address (103)', async (t) => {
  const { manager, netns, links } = setup(t);
  const r = await manager.handle(add('c1', netns('c1')));
  const check: EndpointRequest = {
    op: 'check',
    containerId: 'c1',
    ifname: 'eth0',
    netns: netns('c1'),
  };
  t.deepEqual(await manager.handle(check), { ok: true });
  t.deepEqual(await manager.handle({ ...check, expectIP: '10.1.0.2' }), { ok: true });
  t.is(
    errorCode(await manager.handle({ ...check, expectIP: '10.1.0.77' })),
    103,
    'prevResult disagrees',
  );
  t.is(errorCode(await manager.handle({ ...check, containerId: 'c2' })), 3);
  const host = r.ok ? r.result!.endpoint.hostIfname : '';
  links.hosts.get(host)!.ip = '10.9.9.9';
  t.is(errorCode(await manager.handle(check)), 103);
  await links.remove(host);
  t.is(errorCode(await manager.handle(check)), 103);
});

test('bad requests: interface name, missing namespace, exhausted pool, unknown op', async (t) => {
  const { manager, netns } = setup(t, '10.1.0.0/30'); // one usable address
  t.is(
    errorCode(
      await manager.handle({
        ...add('c1', netns('c1')),
        ifname: 'way-too-long-ifname',
      } as EndpointRequest),
    ),
    4,
  );
  t.is(errorCode(await manager.handle(add('c1', '/nonexistent/netns'))), 4);
  t.is(errorCode(await manager.handle(add('', netns('x')))), 4);
  t.true((await manager.handle(add('c1', netns('c1')))).ok);
  t.is(errorCode(await manager.handle(add('c2', netns('c2')))), 101);
  t.is(errorCode(await manager.handle({ op: 'frob' } as unknown as EndpointRequest)), 6);
});

test('concurrent ADDs are serialised: unique addresses and ids', async (t) => {
  const { manager, netns } = setup(t);
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) => manager.handle(add(`c${i}`, netns(`c${i}`)))),
  );
  const eps = results.map((r) => (r.ok ? r.result!.endpoint : undefined));
  t.is(new Set(eps.map((e) => e?.ip)).size, 20);
  t.is(new Set(eps.map((e) => e?.id)).size, 20);
});

test('restore after restart: re-attaches live endpoints, forgets vanished ones, frees orphan addresses', async (t) => {
  const { manager, netns, datapath, links, make } = setup(t);
  const a = await manager.handle(add('a', netns('a')));
  const b = await manager.handle(add('b', netns('b')));
  manager.ipam.allocate('crashed-before-commit/eth0');
  await links.remove(b.ok ? b.result!.endpoint.hostIfname : ''); // pod namespace deleted while the agent was down
  datapath.attached.clear();

  const restarted = make();
  await links.create({
    host: 'lxc00000000000',
    pod: 'eth0',
    netns: netns('half'),
    ip: '10.1.0.50',
    routerIP: '10.1.0.1',
  });
  t.deepEqual(await restarted.restore(), { restored: 1, removed: 1, failed: 0, orphanLinks: 1 });
  t.false(links.hosts.has('lxc00000000000'), 'the veth of a cut-short ADD is removed');
  t.deepEqual(restarted.list(), [a.ok ? a.result!.endpoint : undefined]);
  t.deepEqual([...datapath.attached.keys()], [1]);
  t.deepEqual([...restarted.ipam.allocations().values()], ['a/eth0']);
  const c = await restarted.handle(add('c', netns('c')));
  t.like(c, { ok: true, result: { endpoint: { id: 2 } } });
});

test('a datapath that fails to re-attach on restore is counted, not fatal', async (t) => {
  const { manager, netns, datapath, make } = setup(t);
  await manager.handle(add('a', netns('a')));
  datapath.failAttach = new Error('verifier busy');
  const restarted = make();
  t.like(await restarted.restore(), { restored: 0, failed: 1 });
  t.is(restarted.list().length, 1);
});
