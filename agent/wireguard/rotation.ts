// Key rotation, device side (make-before-break; protocol in README.md). The new key lives on the
// other slot (isthmus_wg1 when wg0 is active, and back), so both keys serve at once.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { destroyDevice, ensureDevice, wgRunDir, type Device } from './device.ts';
import { loadOrCreateKey, type WgKeyPair } from './keys.ts';
import { PEER_KEEPALIVE_S } from './peers.ts';
import { WG_PRIMARY, WG_SECONDARY, WireguardError, type DeviceSlot } from './types.ts';

export const keyPath = (stateDir: string, ifname: string): string =>
  join(wgRunDir(stateDir), `${ifname}.key`);
const statePath = (stateDir: string): string => join(wgRunDir(stateDir), 'active.json');

export function otherSlot(slot: DeviceSlot): DeviceSlot {
  return slot.ifname === WG_PRIMARY.ifname ? WG_SECONDARY : WG_PRIMARY;
}

const slotNamed = (ifname: unknown): DeviceSlot | undefined =>
  ifname === WG_SECONDARY.ifname
    ? WG_SECONDARY
    : ifname === WG_PRIMARY.ifname
      ? WG_PRIMARY
      : undefined;

/** The node's devices as persisted, so a restarted agent resumes a rotation at its step:
 * `next` from just before the new device is created until the switch (step 1-2), `retiring`
 * from the switch until the old device is gone (step 4). At most one of them is set. */
export interface RotationState {
  active: DeviceSlot;
  next?: DeviceSlot;
  retiring?: DeviceSlot;
}

/** Reads `<stateDir>/wireguard/active.json` ({ifname, next?, retiring?}); absent: wg0 alone. */
export async function readRotationState(stateDir: string): Promise<RotationState> {
  let raw: { ifname?: unknown; next?: unknown; retiring?: unknown };
  try {
    raw = JSON.parse(await readFile(statePath(stateDir), 'utf8')) as typeof raw;
  } catch {
    return { active: WG_PRIMARY };
  }
  const active = slotNamed(raw.ifname) ?? WG_PRIMARY;
  const other = otherSlot(active);
  if (slotNamed(raw.next) === other) return { active, next: other };
  if (slotNamed(raw.retiring) === other) return { active, retiring: other };
  return { active };
}

/** Replaces the state atomically (rename), mode 0600. */
export async function writeRotationState(stateDir: string, s: RotationState): Promise<void> {
  const path = statePath(stateDir);
  const body = {
    ifname: s.active.ifname,
    ...(s.next && { next: s.next.ifname }),
    ...(s.retiring && { retiring: s.retiring.ifname }),
  };
  await mkdir(wgRunDir(stateDir), { recursive: true, mode: 0o700 });
  await writeFile(path + '.tmp', JSON.stringify(body) + '\n', { mode: 0o600 });
  await rename(path + '.tmp', path);
}

/** The slot holding the node's current key (persisted, so a restarted agent keeps it). */
export async function activeSlot(stateDir: string): Promise<DeviceSlot> {
  return (await readRotationState(stateDir)).active;
}

export interface NextDevice {
  device: Device;
  key: WgKeyPair;
}

/** Step 1: a second device with a new key and the same peers as the active one (keepalive 1 s,
 * so each peer that knows the new key handshakes without waiting for traffic). The rotation is
 * recorded before the device exists, so a crash at any point leaves nothing unmanaged. */
export async function createNextDevice(o: {
  active: Device;
  netns?: string;
  stateDir: string;
  mtu: number;
}): Promise<NextDevice> {
  const slot = otherSlot(o.active);
  await rm(keyPath(o.stateDir, slot.ifname), { force: true }); // never reuse a retired key
  await writeRotationState(o.stateDir, { active: o.active, next: slot });
  return openNextDevice({ ...o, slot });
}

/** The next device of a recorded rotation with its persisted key: adopted when its
 * wireguard-go still runs (a restarted agent), created otherwise; peers copied from the active. */
export async function openNextDevice(o: {
  active: Device;
  slot: DeviceSlot;
  netns?: string;
  stateDir: string;
  mtu: number;
}): Promise<NextDevice> {
  const key = await loadOrCreateKey(keyPath(o.stateDir, o.slot.ifname));
  const device = await ensureDevice({
    slot: o.slot,
    netns: o.netns,
    stateDir: o.stateDir,
    privateKey: key.privateKey,
    mtu: o.mtu,
  });
  if (device.adopted) return { device, key }; // keeps the peers (and handshakes) it has
  const peers = (await o.active.control.dump()).peers;
  await device.control.setPeers(
    peers
      .map((p) => ({
        publicKey: p.publicKey,
        endpoint: p.endpoint ?? '',
        allowedIPs: p.allowedIPs,
        persistentKeepalive: 1,
      }))
      .filter((p) => p.endpoint),
  );
  return { device, key };
}

/** Drops the other slot entirely (its device if any, its key) and records the active device
 * alone: undoes a recorded step 1 whose key or device cannot be used, or finishes step 4 when
 * the retiring device is already gone. Idempotent. */
export async function discardOtherSlot(o: {
  netns?: string;
  stateDir: string;
  active: DeviceSlot;
}): Promise<void> {
  const slot = otherSlot(o.active);
  await destroyDevice({ netns: o.netns, stateDir: o.stateDir, ifname: slot.ifname });
  await rm(keyPath(o.stateDir, slot.ifname), { force: true });
  await writeRotationState(o.stateDir, { active: o.active });
}

/** Step 2: waits until every given peer has handshaked on `device` (i.e. holds its new key).
 * Returns the peers still missing at the deadline. */
export async function awaitHandshakes(device: Device, peerKeys: string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const done = new Set(
      (await device.control.dump()).peers
        .filter((p) => p.latestHandshake > 0)
        .map((p) => p.publicKey),
    );
    const missing = peerKeys.filter((k) => !done.has(k));
    if (!missing.length || Date.now() >= deadline) return missing;
    await sleep(100);
  }
}

/** What each peer has sent to the new device so far: rx bytes and the handshake they belong to. */
export type NewDeviceMark = Map<string, { rx: number; handshake: number }>;

export async function markNewDevice(next: Device): Promise<NewDeviceMark> {
  const peers = (await next.control.dump()).peers;
  return new Map(peers.map((p) => [p.publicKey, { rx: p.rxBytes, handshake: p.latestHandshake }]));
}

/** Step 4a: waits until every peer of the old device has moved to the new one, and then sent
 * nothing to the old one for `quietMs`. A peer has moved once the new device received from it
 * more than a handshake since `mark` (taken before the switch): before it applies the flip it
 * holds the new key without allowed IPs or keepalive, so it only answers handshakes there;
 * applying the flip turns its keepalive on, which sends one at once (kernel and wireguard-go),
 * and its traffic follows. A quiet old device alone proves nothing: an idle peer that missed the
 * flip sends it a keepalive only every PEER_KEEPALIVE_S. Returns the peers not moved at the
 * deadline (the old device must stay for them). */
export async function awaitPeersMoved(o: {
  old: Device;
  next: Device;
  mark: NewDeviceMark;
  quietMs: number;
  timeoutMs: number;
  /** called once per peer as soon as it is seen on the new device (its allowed IPs on the old) */
  onMoved?: (peer: { publicKey: string; allowedIPs: string[] }) => Promise<void>;
  /** peers known to have moved already (seen by an earlier call or a previous agent) */
  moved?: string[];
}): Promise<string[]> {
  const deadline = Date.now() + o.timeoutMs;
  const mark = new Map(o.mark);
  const moved = new Set<string>(o.moved);
  const oldRx = new Map<string, { rx: number; at: number }>();
  for (;;) {
    const [old, next] = await Promise.all([o.old.control.dump(), o.next.control.dump()]);
    const onNext = new Map(next.peers.map((p) => [p.publicKey, p]));
    const now = Date.now();
    const waiting: string[] = [];
    for (const p of old.peers) {
      const cur = onNext.get(p.publicKey);
      if (!p.allowedIPs.length || !cur) continue; // a handshake-only key, or the node is gone
      const seen = oldRx.get(p.publicKey);
      if (!seen || seen.rx !== p.rxBytes) oldRx.set(p.publicKey, { rx: p.rxBytes, at: now });
      const base = mark.get(p.publicKey) ?? { rx: 0, handshake: 0 };
      // a new handshake may be ours (rekey) answered by a peer that has not moved: look again
      if (cur.latestHandshake !== base.handshake)
        mark.set(p.publicKey, { rx: cur.rxBytes, handshake: cur.latestHandshake });
      else if (cur.rxBytes > base.rx && !moved.has(p.publicKey)) {
        moved.add(p.publicKey);
        await o.onMoved?.(p);
      }
      const quiet = now - (oldRx.get(p.publicKey)?.at ?? now) >= o.quietMs;
      if (!moved.has(p.publicKey) || !quiet) waiting.push(p.publicKey);
    }
    if (!waiting.length || now >= deadline) return waiting;
    await sleep(100);
  }
}

/** Step 3b: records the new slot as the node's active one and the old as retiring (a restarted
 * agent starts from the new one and retires the old). */
export async function activateSlot(stateDir: string, slot: DeviceSlot): Promise<void> {
  await writeRotationState(stateDir, { active: slot, retiring: otherSlot(slot) });
}

/** Step 4b: retires the old device and its key; the new device's peers drop the 1 s keepalive. */
export async function retireDevice(o: {
  netns?: string;
  stateDir: string;
  old: Device;
  next: Device;
}) {
  if (o.old.ifname === o.next.ifname)
    throw new WireguardError(
      'ISTHMUS_WG_ROTATE',
      'cannot retire the device that carries the new key',
    );
  // device and key first, the record last: a crash in between retires again (idempotent)
  await destroyDevice({ netns: o.netns, stateDir: o.stateDir, ifname: o.old.ifname });
  await rm(keyPath(o.stateDir, o.old.ifname), { force: true });
  await writeRotationState(o.stateDir, { active: o.next });
  const peers = (await o.next.control.dump()).peers;
  await o.next.control.setPeers(
    peers
      .filter((p) => p.endpoint)
      .map((p) => ({
        publicKey: p.publicKey,
        endpoint: p.endpoint ?? '',
        allowedIPs: p.allowedIPs,
        persistentKeepalive: PEER_KEEPALIVE_S,
      })),
  );
}
