// awaitPeersMoved on fake devices: which peers count as moved to the new key before the old
// device may be retired.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Device } from './device.ts';
import { FakeWg } from './fake-wg.ts';
import { awaitPeersMoved, markNewDevice } from './rotation.ts';
import { WG_PRIMARY, WG_SECONDARY } from './types.ts';

const Y = 'peer-y-key';
const Z = 'peer-z-key';

function deviceOf(wg: FakeWg, slot: typeof WG_PRIMARY | typeof WG_SECONDARY): Device {
  const control = wg as unknown as Device['control']; // only WgControl's calls are used
  return { ...slot, mode: 'wireguard-go', pid: null, adopted: true, control };
}

/** Both devices with peers Y and Z (allowed IPs), handshaked on the new one (step 2 done). */
async function rotated() {
  const [oldWg, newWg] = [new FakeWg('old'), new FakeWg('new')];
  for (const [k, i] of [
    [Y, 2],
    [Z, 3],
  ] as const) {
    const spec = { publicKey: k, endpoint: `172.30.0.${i}:51871`, allowedIPs: [`10.1.${i}.0/24`] };
    await oldWg.setPeers([spec]);
    await newWg.setPeers([spec]);
    Object.assign(newWg.peers.get(k)!, { latestHandshake: 1000, rxBytes: 92 });
  }
  const old = deviceOf(oldWg, WG_PRIMARY);
  const next = deviceOf(newWg, WG_SECONDARY);
  return { oldWg, newWg, old, next, mark: await markNewDevice(next) };
}

const bump = (wg: FakeWg, key: string, o: { rx?: number; handshake?: number }) => {
  const p = wg.peers.get(key)!;
  p.rxBytes += o.rx ?? 0;
  if (o.handshake) p.latestHandshake = o.handshake;
};

test('peers that sent on the new device after the mark have moved: nothing waits', async (t) => {
  const { newWg, old, next, mark } = await rotated();
  bump(newWg, Y, { rx: 32 }); // the keepalive sent when Y applied the flip
  bump(newWg, Z, { rx: 1400 }); // Z's traffic on the new key
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 5_000 }), []);
});

test('an idle peer that has not applied the flip keeps the old device, however quiet', async (t) => {
  const { newWg, old, next, mark } = await rotated();
  bump(newWg, Z, { rx: 32 });
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 500 }), [Y]);
});

test('a handshake answered on the new device is no proof; data after it is', async (t) => {
  const { newWg, old, next, mark } = await rotated();
  bump(newWg, Z, { rx: 32 });
  bump(newWg, Y, { rx: 92, handshake: 1120 }); // our rekey, answered by a peer not moved yet
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 500 }), [Y]);
  const later = awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 5_000 });
  await sleep(300);
  bump(newWg, Y, { rx: 32 });
  t.deepEqual(await later, []);
});

test('a moved peer still sending to the old device waits until it is quiet there', async (t) => {
  const { oldWg, newWg, old, next, mark } = await rotated();
  bump(newWg, Y, { rx: 32 });
  bump(newWg, Z, { rx: 32 });
  const stop = Date.now() + 400;
  const busy = (async () => {
    while (Date.now() < stop) {
      bump(oldWg, Y, { rx: 100 }); // packets still in flight to the old key
      await sleep(20);
    }
  })();
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 1_000, timeoutMs: 300 }), [Y, Z]);
  await busy;
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 5_000 }), []);
});

test('handshake-only keys and nodes gone from the new device are not waited for', async (t) => {
  const { oldWg, newWg, old, next, mark } = await rotated();
  await oldWg.setPeers([
    { publicKey: 'next-key-of-w', endpoint: '172.30.0.4:51872', allowedIPs: [] },
  ]);
  await newWg.removePeers([Z]); // Z's node was deleted meanwhile
  bump(newWg, Y, { rx: 32 });
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 5_000 }), []);
});

test('onMoved is called once per peer, with its allowed IPs, as soon as it is seen', async (t) => {
  const { newWg, old, next, mark } = await rotated();
  const calls: Array<[string, string[]]> = [];
  const onMoved = async (p: { publicKey: string; allowedIPs: string[] }) => {
    calls.push([p.publicKey, p.allowedIPs]);
  };
  bump(newWg, Z, { rx: 32 });
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 400, onMoved }), [
    Y,
  ]);
  t.deepEqual(calls, [[Z, ['10.1.3.0/24']]], 'only Z moved, reported once over many samples');
});

test('peers already known to have moved (routes on the new device) need no new sign', async (t) => {
  const { old, next, mark } = await rotated();
  t.deepEqual(await awaitPeersMoved({ old, next, mark, quietMs: 50, timeoutMs: 400, moved: [Y] }), [
    Z,
  ]);
});
