// Restart without disruption: pinned maps are adopted (same ids), a program swap is atomic, and
// programs outlive the process that loaded them.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../native/index.ts';
import { Protocol, type EndpointPolicy } from '../policy/entry.ts';
import { openDatapath } from './datapath.ts';
import { Stat } from './stats-map.ts';
import type { FlowEvent } from './events.ts';
import {
  createFixture,
  endpointIdOf,
  identityOf,
  resetFixture,
  type Fixture,
} from './test/fixture.ts';
import type { Pod } from './test/topology.ts';

let f: Fixture;
let p1: Pod, p2: Pod, p3: Pod;

test.before(async () => {
  f = await createFixture(3);
  [p1, p2, p3] = f.topo.pods as [Pod, Pod, Pod];
  await f.topo.background(p2.netnsPath, ['tcp-server', '8080', '240']);
});

test.after.always(async () => {
  f?.dp.close();
  await f?.topo.destroy();
});

test.beforeEach(() => resetFixture(f));

/** p2 admits p1 on TCP 8080 only. */
const oneWay = (): EndpointPolicy => ({
  ingressEnforced: true,
  egressEnforced: false,
  entries: [
    {
      direction: 'ingress',
      peer: identityOf(p1),
      protocol: Protocol.TCP,
      port: 8080,
      portPrefixLen: 16,
      deny: false,
    },
  ],
  prefixes: [],
});

test.serial('a second open on the same pin root adopts the maps: same ids, same contents', (t) => {
  f.dp.applyEndpointPolicy(endpointIdOf(p2), oneWay());
  const before = f.dp.mapIds();
  const again = openDatapath({ pinRoot: f.topo.pinRoot, netns: f.topo.nodeNetnsPath });
  t.teardown(() => again.close());
  t.deepEqual(again.mapIds(), before);
  t.deepEqual(again.policy.read(endpointIdOf(p2)), oneWay().entries);
  t.true(again.endpointPolicyConverged(endpointIdOf(p2), oneWay()));
  t.false(again.endpointPolicyConverged(endpointIdOf(p2), { ...oneWay(), egressEnforced: true }));
  t.false(again.endpointPolicyConverged(endpointIdOf(p2), { ...oneWay(), entries: [] }));
  t.deepEqual(again.endpoints.get(p2.ip), f.dp.endpoints.get(p2.ip));
  t.not(again.programIds().fromPod, f.dp.programIds().fromPod, 'a fresh program load');
  t.is(typeof again.stats.get(Stat.EVENTS_LOST), 'bigint');
});

test.serial('a pin root that is not on a bpffs is refused with a coded error', (t) => {
  const e = t.throws(() => openDatapath({ pinRoot: '/proc/self' }));
  t.is((e as Error & { code: string }).code, 'EDATAPATH_PINROOT');
});

test.serial(
  'replacing the programs under load never lets a denied packet through or breaks a stream',
  async (t) => {
    f.dp.applyEndpointPolicy(endpointIdOf(p2), oneWay());
    const stream = await f.topo.background(p1.netnsPath, [
      'tcp-stream',
      p2.ip,
      '8080',
      '6',
      '0.01',
    ]);
    const sniffer = await f.topo.background(p2.netnsPath, ['sniff', 'eth0', '7777', '5']);
    const flood = await f.topo
      .background(p3.netnsPath, ['udp-flood', p2.ip, '7777', '4'])
      .catch(() => undefined);
    const mapIds = f.dp.mapIds();
    const swapped = new Set<number>();
    const deadline = Date.now() + 3000;
    let swaps = 0;
    while (Date.now() < deadline && swaps < 40) {
      const next = openDatapath({ pinRoot: f.topo.pinRoot, netns: f.topo.nodeNetnsPath });
      const ids = next.attachEndpoint({ ifindex: p2.ifindex });
      t.deepEqual(next.attached({ ifindex: p2.ifindex }), ids);
      t.deepEqual(next.mapIds(), mapIds);
      swapped.add(ids.egressProgramId);
      next.close();
      swaps++;
      await new Promise((r) => setTimeout(r, 20));
    }
    const sent = flood ? await flood.waitFor((l) => 'sent' in l, 8000) : { sent: 0 };
    const seen = await sniffer.waitFor((l) => 'count' in l, 8000);
    await stream.exited;
    t.true(swaps >= 10, `${swaps} swaps`);
    t.is(swapped.size, swaps, 'every swap attached a new program');
    t.true((sent.sent as number) > 1000, `flood sent ${String(sent.sent)} packets`);
    t.is(seen.count, 0, 'no denied packet reached the pod during the swaps');
    const rounds = stream.lines.filter((l) => (l.seq as number) > 0);
    t.true(rounds.length > 50, `${rounds.length} stream rounds`);
    t.true(
      stream.lines.every((l) => l.ok === true),
      'the stream never failed',
    );
  },
);

test.serial('programs stay attached and pinned after the loading process exits', async (t) => {
  const child = join(fileURLToPath(new URL('.', import.meta.url)), 'test/attach-child.ts');
  const r = spawnSync(
    'node',
    ['--import', 'tsx', child, f.topo.pinRoot, f.topo.nodeNetnsPath, String(p3.ifindex)],
    {
      encoding: 'utf8',
    },
  );
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    programs: { fromPod: number; toPod: number };
    maps: Record<string, number>;
  };
  t.deepEqual(out.maps, f.dp.mapIds(), 'the child adopted our maps');
  t.deepEqual(f.dp.attached({ ifindex: p3.ifindex }), {
    ingressProgramId: out.programs.fromPod,
    egressProgramId: out.programs.toPod,
  });
  const pinned = join(f.topo.pinRoot, 'progs/to_pod');
  t.true(existsSync(pinned));
  const addon = nativeAddon();
  const fd = addon.objGet(pinned);
  t.is(addon.progInfo(fd).id, out.programs.toPod);
  addon.closeFd(fd);
  // Still enforcing with nobody holding the object: p3 denies everything in.
  f.dp.applyEndpointPolicy(endpointIdOf(p3), {
    ingressEnforced: true,
    egressEnforced: false,
    entries: [],
    prefixes: [],
  });
  t.like(await f.topo.tool(p1.netnsPath, ['tcp-connect', p3.ip, '8080', '1']), { ok: false });
});

test.serial('flow events arrive through the event loop without polling', async (t) => {
  f.dp.applyEndpointPolicy(endpointIdOf(p2), oneWay());
  const got = new Promise<FlowEvent>((resolve) => {
    const stop = f.dp.subscribeEvents(
      (e) => {
        if (e.verdict === 'dropped' && e.endpointId === endpointIdOf(p2)) {
          stop();
          resolve(e);
        }
      },
      { keepAlive: true },
    );
  });
  await f.topo.tool(p3.netnsPath, ['tcp-connect', p2.ip, '8080', '0.5']);
  const e = await got;
  t.like(e, { srcIdentity: identityOf(p3), dstIdentity: identityOf(p2), dport: 8080 });
});

test.serial('detach removes the programs and is idempotent', (t) => {
  t.true(f.dp.detachEndpoint({ ifindex: p3.ifindex }));
  t.deepEqual(f.dp.attached({ ifindex: p3.ifindex }), { ingressProgramId: 0, egressProgramId: 0 });
  t.false(f.dp.detachEndpoint({ ifindex: p3.ifindex }));
});

test.serial(
  'removing an endpoint leaves no row, connection, counter or program of it',
  async (t) => {
    const ep1 = endpointIdOf(p1);
    f.dp.applyEndpointPolicy(ep1, {
      ...oneWay(),
      entries: oneWay().entries.map((e) => ({ ...e, peer: identityOf(p2) })),
    });
    t.like(await f.topo.tool(p1.netnsPath, ['tcp-connect', p2.ip, '8080', '1.5']), { ok: true });
    t.true(f.dp.ct.connections(ep1).length > 0);
    t.truthy(f.dp.counters.get(ep1));
    f.dp.removeEndpoint(ep1);
    t.is(f.dp.endpoints.get(p1.ip), undefined);
    t.deepEqual(f.dp.policy.read(ep1), []);
    t.deepEqual(f.dp.ct.connections(ep1), []);
    t.is(f.dp.counters.get(ep1), undefined);
    t.deepEqual(f.dp.attached({ ifindex: p1.ifindex }), {
      ingressProgramId: 0,
      egressProgramId: 0,
    });
    t.notThrows(() => f.dp.removeEndpoint(ep1), 'idempotent');
  },
);

test.serial('teardown leaves nothing behind', async (t) => {
  f.dp.close();
  t.deepEqual(await f.topo.destroy(), []);
});
