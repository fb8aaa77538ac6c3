import test from 'ava';
import { FakeRouteNetlink } from './fake-netlink.ts';
import { NodeRouteReconciler, validateNode } from './reconciler.ts';

const n1 = { name: 'n1', underlayIP: '172.30.0.10', podCIDR: '10.1.0.0/24' };
const n2 = { name: 'n2', underlayIP: '172.30.0.11', podCIDR: '10.1.1.0/24' };
const n3 = { name: 'n3', underlayIP: '172.30.0.12', podCIDR: '10.1.2.0/24' };

async function started(nodes = [n1, n2, n3]) {
  const netlink = new FakeRouteNetlink();
  const rec = new NodeRouteReconciler('n1', netlink, { intervalMs: 0 });
  await rec.start(nodes);
  return { netlink, rec };
}

test('routes every other node pod CIDR via its underlay IP, never the local one', async (t) => {
  const { netlink } = await started();
  t.deepEqual(Object.fromEntries(netlink.routes), {
    '10.1.1.0/24': '172.30.0.11',
    '10.1.2.0/24': '172.30.0.12',
  });
});

test('update is idempotent and follows a changed underlay IP', async (t) => {
  const { netlink, rec } = await started();
  await rec.update(n2);
  await rec.update(n2);
  t.is(netlink.routes.size, 2);
  await rec.update({ ...n2, underlayIP: '172.30.0.99' });
  t.is(netlink.routes.get('10.1.1.0/24'), '172.30.0.99');
  t.deepEqual(rec.statusOf('n2'), { ok: true });
});

test('delete removes the route; deleting twice or an unknown node succeeds', async (t) => {
  const { netlink, rec } = await started();
  await rec.delete('n3');
  await rec.delete('n3');
  await rec.delete('nobody');
  t.deepEqual([...netlink.routes.keys()], ['10.1.1.0/24']);
});

test('prune repairs drift: restores a deleted route, fixes a wrong gateway, removes a stale one', async (t) => {
  const { netlink, rec } = await started();
  netlink.routes.delete('10.1.1.0/24');
  netlink.routes.set('10.1.2.0/24', '172.30.0.77');
  netlink.routes.set('10.9.0.0/24', '172.30.0.50');
  await rec.prune();
  t.deepEqual(Object.fromEntries(netlink.routes), {
    '10.1.1.0/24': '172.30.0.11',
    '10.1.2.0/24': '172.30.0.12',
  });
  const calls = netlink.calls;
  await rec.prune();
  t.is(netlink.calls, calls + 1, 'a converged pass only lists');
});

test('a failed update is reported as row status and repaired by the next pass', async (t) => {
  const errors: unknown[] = [];
  const netlink = new FakeRouteNetlink();
  const rec = new NodeRouteReconciler('n1', netlink, {
    intervalMs: 0,
    onError: (e) => errors.push(e),
  });
  await rec.start([n1]);
  netlink.failNext = new Error('netlink busy');
  await rec.update(n2);
  t.false(rec.statusOf('n2')?.ok);
  t.is(errors.length, 1);
  await rec.prune();
  t.deepEqual(rec.statusOf('n2'), { ok: true });
  t.is(netlink.routes.get('10.1.1.0/24'), '172.30.0.11');
});

test('periodic pass repairs drift on its own', async (t) => {
  const netlink = new FakeRouteNetlink();
  const rec = new NodeRouteReconciler('n1', netlink, { intervalMs: 20 });
  t.teardown(() => rec.stop());
  await rec.start([n1, n2]);
  netlink.routes.clear();
  await new Promise((r) => setTimeout(r, 120));
  t.is(netlink.routes.get('10.1.1.0/24'), '172.30.0.11');
});

test('validateNode canonicalises the CIDR and rejects bad rows with a code', (t) => {
  t.is(validateNode({ ...n2, podCIDR: '10.1.1.7/24' }).podCIDR, '10.1.1.0/24');
  t.throws(() => validateNode({ ...n2, underlayIP: 'x' }), { code: 'ISTHMUS_BAD_NODE' } as never);
  t.throws(() => validateNode({ ...n2, podCIDR: '10.1.1.0' }), { message: /not a CIDR/ });
});
