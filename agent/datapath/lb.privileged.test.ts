// Service load-balancing by the pod programs with real packets between pod namespaces: spread,
// backend pinning of TCP and UDP flows across backend changes, hairpin, fast refusal without
// backends, and policy against the backend after translation.
import test from 'ava';
import { Protocol } from '../policy/entry.ts';
import { LbReconciler } from '../services/lb-reconciler.ts';
import type { FrontendState } from '../services/types.ts';
import { DropReason } from './constants.ts';
import {
  createFixture,
  endpointIdOf,
  identityOf,
  resetFixture,
  waitForEvent,
  type Fixture,
} from './test/fixture.ts';
import type { Pod } from './test/topology.ts';

const VIP = '10.96.0.10';
const PORT = 80;
const TARGET = 8080;

let f: Fixture;
let client: Pod;
let backends: Pod[];
let lb: LbReconciler;

test.before(async () => {
  f = await createFixture(5);
  [client, ...backends] = f.topo.pods as [Pod, ...Pod[]];
  for (const p of backends)
    await f.topo.background(p.netnsPath, ['who-server', String(TARGET), '300', p.ip]);
  lb = new LbReconciler(f.dp.lb);
});

test.after.always(async () => {
  f?.dp.close();
  const left = await f?.topo.destroy();
  if (left && left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
});

test.beforeEach(() => resetFixture(f));

const frontend = (pods: Pod[], protocol: 'TCP' | 'UDP' = 'TCP'): FrontendState => ({
  service: 'default/echo/http',
  addr: VIP,
  port: PORT,
  protocol,
  backends: pods.map((p) => ({ addr: p.ip, port: TARGET })),
});

const serve = (pods: Pod[]): void => {
  lb.reconcile([frontend(pods), frontend(pods, 'UDP')]);
};

type Counts = { counts: Record<string, number>; errors: Record<string, number> };

test.serial(
  '200 connections to the ClusterIP all succeed and spread over every backend',
  async (t) => {
    serve(backends.slice(0, 3));
    const r = (await f.topo.tool(
      client.netnsPath,
      ['tcp-who', VIP, String(PORT), '200', '2'],
      60_000,
    )) as Counts;
    t.deepEqual(r.errors, {});
    const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
    t.is(total, 200);
    t.deepEqual(
      Object.keys(r.counts).sort(),
      backends
        .slice(0, 3)
        .map((p) => p.ip)
        .sort(),
    );
    for (const n of Object.values(r.counts))
      t.true(n >= 200 / 3 / 2, `uneven spread ${JSON.stringify(r.counts)}`);
  },
);

test.serial(
  'a long-lived TCP connection stays on its backend while others come and go',
  async (t) => {
    serve(backends.slice(0, 2));
    const stream = await f.topo.background(client.netnsPath, [
      'tcp-who-stream',
      VIP,
      String(PORT),
      '6',
      '0.1',
    ]);
    const first = await stream.waitFor((l) => l.seq === 0, 5000);
    t.true(first.ok as boolean);
    const mine = first.who as string;
    const others = backends.filter((p) => p.ip !== mine);
    const steps = [
      [backends.find((p) => p.ip === mine)!, ...others],
      [backends.find((p) => p.ip === mine)!, others[2]!],
      [backends.find((p) => p.ip === mine)!, others[0]!, others[1]!],
    ];
    for (const step of steps) {
      serve(step);
      await new Promise((r) => setTimeout(r, 700));
    }
    await stream.exited;
    const rounds = stream.lines.filter((l) => typeof l.seq === 'number' && (l.seq as number) >= 0);
    t.true(rounds.length >= 20, `only ${rounds.length} rounds`);
    t.true(
      rounds.every((l) => l.ok === true && l.who === mine),
      JSON.stringify(rounds.slice(-3)),
    );
  },
);

test.serial('a UDP flow keeps its backend while others come and go', async (t) => {
  serve(backends.slice(0, 3));
  const flow = f.topo.tool(
    client.netnsPath,
    ['udp-who', VIP, String(PORT), '30', '0.1', '40123'],
    20_000,
  );
  await new Promise((r) => setTimeout(r, 800));
  serve(backends); // one more backend
  await new Promise((r) => setTimeout(r, 800));
  const r = (await flow) as { whos: string[]; errors: Record<string, number> };
  t.deepEqual(r.errors, {});
  t.is(r.whos.length, 30);
  t.is(new Set(r.whos).size, 1, `the flow moved: ${[...new Set(r.whos)].join(', ')}`);
});

test.serial('a connection whose backend is removed is balanced again', async (t) => {
  serve(backends.slice(0, 1));
  const before = (await f.topo.tool(client.netnsPath, [
    'udp-who',
    VIP,
    String(PORT),
    '3',
    '0.05',
    '40124',
  ])) as { whos: string[] };
  t.deepEqual(before.whos, [backends[0]!.ip, backends[0]!.ip, backends[0]!.ip]);
  serve(backends.slice(1, 2));
  const after = (await f.topo.tool(client.netnsPath, [
    'udp-who',
    VIP,
    String(PORT),
    '3',
    '0.05',
    '40124',
  ])) as { whos: string[] };
  t.deepEqual(after.whos, [backends[1]!.ip, backends[1]!.ip, backends[1]!.ip]);
});

test.serial(
  'a direct connection reusing the source port of an earlier service connection is not translated back',
  async (t) => {
    serve(backends.slice(0, 1));
    const b = backends[0]!;
    const via = (await f.topo.tool(client.netnsPath, [
      'tcp-who',
      VIP,
      String(PORT),
      '1',
      '2',
      '41777',
    ])) as Counts;
    t.deepEqual(via.counts, { [b.ip]: 1 });
    const direct = (await f.topo.tool(client.netnsPath, [
      'tcp-who',
      b.ip,
      String(TARGET),
      '1',
      '2',
      '41777',
    ])) as Counts;
    t.deepEqual(direct, { counts: { [b.ip]: 1 }, errors: {} });
  },
);

test.serial(
  'hairpin: a backend calling its own service gets answers, also from itself',
  async (t) => {
    serve(backends.slice(0, 3));
    const self = backends[0]!;
    const r = (await f.topo.tool(
      self.netnsPath,
      ['tcp-who', VIP, String(PORT), '60', '2'],
      30_000,
    )) as Counts;
    t.deepEqual(r.errors, {});
    t.true((r.counts[self.ip] ?? 0) > 0, `no answer from itself: ${JSON.stringify(r.counts)}`);
    t.is(
      Object.values(r.counts).reduce((a, b) => a + b, 0),
      60,
    );
    const udp = (await f.topo.tool(self.netnsPath, [
      'udp-who',
      VIP,
      String(PORT),
      '20',
      '0.01',
      '0',
    ])) as { whos: string[] };
    t.is(udp.whos.length, 20);
  },
);

test.serial(
  'a service without backends refuses at once (ICMP port unreachable), TCP and UDP',
  async (t) => {
    serve([]);
    const started = Date.now();
    const r = await f.topo.tool(client.netnsPath, ['tcp-connect', VIP, String(PORT), '5']);
    const elapsed = Date.now() - started;
    t.like(r, { ok: false, error: 'ConnectionRefusedError' });
    t.true(elapsed < 1000, `refusal took ${elapsed} ms`);
    t.like(await f.topo.tool(client.netnsPath, ['udp-send', VIP, String(PORT), '5']), {
      ok: false,
      error: 'ConnectionRefusedError',
    });
    t.like(await waitForEvent(f, (e) => e.verdict === 'dropped'), {
      dropReason: DropReason.NO_SERVICE_BACKEND,
      dst: VIP,
    });
  },
);

test.serial(
  'policy applies to the backend after translation: allowed backend or a drop',
  async (t) => {
    serve(backends.slice(0, 2));
    const [x, y] = backends as [Pod, Pod];
    f.dp.applyEndpointPolicy(endpointIdOf(client), {
      ingressEnforced: false,
      egressEnforced: true,
      entries: [
        {
          direction: 'egress',
          peer: identityOf(x),
          protocol: Protocol.TCP,
          port: TARGET,
          portPrefixLen: 16,
          deny: false,
        },
      ],
      prefixes: [],
    });
    const r = (await f.topo.tool(
      client.netnsPath,
      ['tcp-who', VIP, String(PORT), '30', '0.5'],
      60_000,
    )) as Counts;
    t.deepEqual(Object.keys(r.counts), [x.ip], JSON.stringify(r));
    t.true((r.counts[x.ip] ?? 0) > 0);
    t.true((r.errors.TimeoutError ?? 0) + (r.counts[x.ip] ?? 0) === 30, JSON.stringify(r.errors));
    const drop = await waitForEvent(f, (e) => e.verdict === 'dropped' && e.direction === 'egress');
    t.like(drop, {
      dst: y.ip,
      dstIdentity: identityOf(y),
      dport: TARGET,
      dropReason: DropReason.POLICY_DEFAULT,
    });
  },
);
