// Negative control for the encryption capture: with `encryption: none` the same capture of the
// underlay finds the marker and pod addresses, so the encrypted test's "zero" means something.
import test from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { planLab } from '../lab/config.ts';
import { Lab } from '../lab/lab.ts';
import { labLeftovers } from '../lab/leftovers.ts';
import { ensureBuilt, uniqueLabName } from '../lab/testing.ts';
import { encryptionOf, inPod, plaintextLines, startCapture, wireguardLines } from './helpers.ts';

const plan = planLab({
  name: uniqueLabName('plain'),
  encryption: 'none',
  clusters: [{ name: 'c1', id: 1, podCIDR: '10.63.0.0/16', nodes: 2 }],
});
const nodes = plan.clusters[0]!.nodes;
const MARKER = 'ISTHMUS-PLAINTEXT-MARKER-7f3a';
let lab: Lab | undefined;

test.before(async () => {
  await ensureBuilt();
});

test.after.always(async () => {
  await lab?.down();
  if (lab) {
    const left = await labLeftovers(plan.name);
    if (left.length) throw new Error(`leftovers: ${JSON.stringify(left)}`);
  }
});

test.serial('with encryption: none the underlay capture sees the marker', async (t) => {
  lab = await Lab.up(plan, { routeIntervalMs: 300 });
  const work = join(plan.runDir, 'e2e');
  mkdirSync(work, { recursive: true });
  const ports = [
    { port: 80, protocol: 'TCP' as const, name: 'http' },
    { port: 53, protocol: 'UDP' as const, name: 'dns' },
  ];
  const pods = await lab.addPods(
    [0, 1].map((i) => ({ cluster: 'c1', namespace: 'default', name: `p${i}`, ports })),
  );
  const [a, b] = [
    pods.find((p) => p.node === nodes[0]!.name)!,
    pods.find((p) => p.node === nodes[1]!.name)!,
  ];
  t.is(await encryptionOf(nodes[0]!), undefined, 'no WireGuard without encryption');
  const cap = await startCapture(plan, join(work, 'plain.pcap'));
  const r = await inPod<{ tcpEchoed: number; udpEchoed: number }>(a, [
    'marker',
    b.ip,
    '80',
    '53',
    MARKER,
    '10',
  ]);
  const got = await cap.stop();
  t.deepEqual(r, { tcpEchoed: 10, udpEchoed: 10 });
  t.true(got.raw.includes(MARKER), 'the capture sees the plaintext marker');
  t.true(plaintextLines(got, '10.63.').length >= 40, 'pod addresses on the underlay');
  t.deepEqual(wireguardLines(got), []);
});
