// Negative control for the encryption capture: with `encryption: none` the same capture of the
// underlay finds the marker and pod addresses, so the encrypted tests' "zero" means something —
// between nodes of one cluster and between clusters (c2's node is reached over the mesh).
import test from 'ava';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { planLab } from '../lab/config.ts';
import { Lab } from '../lab/lab.ts';
import { ensureBuilt, uniqueLabName, downWithoutLeftovers } from '../lab/testing.ts';
import {
  HTTP_AND_DNS,
  encryptionOf,
  inPod,
  plaintextLines,
  startCapture,
  wireguardLines,
} from './helpers.ts';

const plan = planLab({
  name: uniqueLabName('plain'),
  encryption: 'none',
  clusters: [
    { name: 'c1', id: 1, podCIDR: '10.63.0.0/16', nodes: 2 },
    { name: 'c2', id: 2, podCIDR: '10.64.0.0/16', nodes: 1 },
  ],
});
const nodes = plan.clusters[0]!.nodes;
const remote = plan.clusters[1]!.nodes[0]!;
const MARKER = 'ISTHMUS-PLAINTEXT-MARKER-7f3a';
let lab: Lab | undefined;

test.before(async () => {
  await ensureBuilt();
});

test.after.always(() => downWithoutLeftovers(lab, plan.name));

test.serial('with encryption: none the underlay capture sees the marker', async (t) => {
  lab = await Lab.up(plan, { routeIntervalMs: 300 });
  const work = join(plan.runDir, 'e2e');
  mkdirSync(work, { recursive: true });
  const pods = await lab.addPods([
    ...[0, 1].map((i) => ({
      cluster: 'c1',
      namespace: 'default',
      name: `p${i}`,
      ports: HTTP_AND_DNS,
    })),
    { cluster: 'c2', namespace: 'default', name: 'r', ports: HTTP_AND_DNS },
  ]);
  const [a, b, r2] = [nodes[0]!, nodes[1]!, remote].map((n) =>
    pods.find((p) => p.node === n.name)!,
  );
  t.is(await encryptionOf(nodes[0]!), undefined, 'no WireGuard without encryption');
  const cap = await startCapture(plan, join(work, 'plain.pcap'));
  const r = await inPod<Marked>(a!, ['marker', b!.ip, '80', '53', MARKER, '10']);
  const got = await cap.stop();
  t.deepEqual(r, { tcpEchoed: 10, udpEchoed: 10 });
  t.true(got.raw.includes(MARKER), 'the capture sees the plaintext marker');
  t.true(plaintextLines(got, '10.63.').length >= 40, 'pod addresses on the underlay');
  t.deepEqual(wireguardLines(got), []);

  // across clusters: wait for the mesh's native route, then the same capture
  const deadline = Date.now() + 60_000;
  const cross = () => inPod<Marked>(r2!, ['marker', a!.ip, '80', '53', MARKER, '10']);
  while ((await cross()).tcpEchoed === 0 && Date.now() < deadline);
  const cap2 = await startCapture(plan, join(work, 'plain-cross.pcap'));
  const r2r = await cross();
  const got2 = await cap2.stop();
  t.deepEqual(r2r, { tcpEchoed: 10, udpEchoed: 10 });
  t.true(got2.raw.includes(MARKER), 'the capture sees the cross-cluster marker');
  t.true(plaintextLines(got2, '10.64.').length >= 40, 'c2 pod addresses on the underlay');
  t.deepEqual(wireguardLines(got2), []);
});

type Marked = { tcpEchoed: number; udpEchoed: number };
