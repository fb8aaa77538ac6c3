// WireguardAgent: the one object the daemon wires. start() creates or adopts the node's device
// and strict filter; the node table comes in through setPeers/update/delete; stop() leaves the
// device, its peers, routes and the strict filter in place for the next agent.
import { adoptDevice, destroyDevice, ensureDevice, type Device } from './device.ts';
import { loadOrCreateKey, type WgKeyPair } from './keys.ts';
import { PeerReconciler } from './peers.ts';
import { tunnelMtu, tunnelRoutes, type TunnelRoute } from './routes.ts';
import {
  activateSlot,
  awaitHandshakes,
  awaitPeersMoved,
  createNextDevice,
  discardOtherSlot,
  keyPath,
  markNewDevice,
  openNextDevice,
  otherSlot,
  readRotationState,
  retireDevice,
  type NewDeviceMark,
  type NextDevice,
  type RotationState,
} from './rotation.ts';
import { kernelSteering, type Steering } from './steering.ts';
import { StrictFilter } from './strict.ts';
import { READY_HANDSHAKE_S, WireguardError, type WgNode, type WireguardStatus } from './types.ts';

export interface WireguardAgentOptions {
  /** `<cluster>/<node>`, as in the node table */
  nodeName: string;
  netns?: string;
  /** per-node directory that outlives the agent (keys, wireguard-go record and socket) */
  stateDir: string;
  underlayMtu?: number;
  /** install routes of remote pod ranges via the device (default true) */
  manageRoutes?: boolean;
  /** strict mode: omit to leave it off (tests of plaintext), otherwise on the underlay egress */
  strict?: { pinRoot: string; underlayIf: string; localPodCIDRs: string[] };
  /** period of the full pass reading the device back (default 30 s; 0 = none) */
  resyncMs?: number;
  mode?: 'auto' | 'wireguard-go';
}

export interface RotationOptions {
  /** wait this long for every peer to handshake on the new key (WireGuard retries every 5 s) */
  handshakeTimeoutMs?: number;
  /** publish the new key as the node's main key; peers then move its allowed IPs to it */
  afterSwitch?: () => Promise<void>;
  /** the old device goes once every peer moved to the new one and then sent nothing to the old
   * one for this long (default 2 s) */
  quietMs?: number;
  /** give up waiting for that after this long (default 40 s, above the peers' 25 s keepalive,
   * which is how an idle peer that moved shows itself after an agent restart); the old key
   * keeps serving */
  retireTimeoutMs?: number;
}

/** A rotation found at start: its next device adopted, its old device adopted as retiring, or
 * what was left of it discarded (with the reason). */
export interface ResumedRotation {
  step: 'next' | 'retiring' | 'discarded';
  device: string;
  reason?: string;
}

export class WireguardAgent {
  private timer: NodeJS.Timeout | undefined;
  private next: NextDevice | undefined;
  /** the previous device after a rotation's switch, until no peer uses it */
  private retiring: Device | undefined;
  /** what peers had sent to the new device before the switch (see `awaitPeersMoved`) */
  private retireMark: NewDeviceMark | undefined;
  private nextReconciler: PeerReconciler | undefined;
  /** prefixes still routed through the old device during a rotation (their peer has not been
   * seen on the new key); a restarted agent reads them back from the kernel's routes */
  private onOld = new Set<string>();
  /** what `start` found of a rotation left by the previous agent (for the daemon's log) */
  resumed: ResumedRotation | undefined;
  private reconciler: PeerReconciler;
  /** set by the first `setPeers`: until then passes only add (routes, ranges, peers) */
  private fullTable = false;

  private constructor(
    private readonly o: WireguardAgentOptions,
    private device: Device,
    private key: WgKeyPair,
    readonly strict: StrictFilter | undefined,
    private readonly steering: Steering,
  ) {
    this.reconciler = this.reconcilerFor(device);
  }

  /** An agent over a given device and steering, without starting anything (unit tests on
   * fakes: FakeWg as the device's control, FakeSteering). */
  static assemble(
    o: WireguardAgentOptions,
    device: Device,
    key: WgKeyPair,
    steering: Steering,
  ): WireguardAgent {
    return new WireguardAgent(o, device, key, undefined, steering);
  }

  static async start(o: WireguardAgentOptions): Promise<WireguardAgent> {
    const state = await readRotationState(o.stateDir);
    const slot = state.active;
    const key = await loadOrCreateKey(keyPath(o.stateDir, slot.ifname));
    const mtu = tunnelMtu(o.underlayMtu ?? 1500);
    const device = await ensureDevice({
      slot,
      netns: o.netns,
      stateDir: o.stateDir,
      privateKey: key.privateKey,
      mtu,
      mode: o.mode,
    });
    let strict: StrictFilter | undefined;
    try {
      if (o.strict) strict = await StrictFilter.attach({ ...o.strict, netns: o.netns });
    } catch (err) {
      throw new WireguardError(
        'ISTHMUS_WG_START',
        `WireGuard for ${o.nodeName} could not start strict mode`,
        { cause: err },
      );
    }
    const steering = kernelSteering({
      netns: o.netns,
      manageRoutes: o.manageRoutes !== false,
      strict,
    });
    const agent = new WireguardAgent(o, device, key, strict, steering);
    await agent.resume(state);
    if (o.resyncMs !== 0)
      agent.timer = setInterval(
        () => void agent.resync().catch(() => {}),
        o.resyncMs ?? 30_000,
      ).unref();
    return agent;
  }

  get publicKey(): string {
    return this.key.publicKey;
  }
  get nextPublicKey(): string | undefined {
    return this.next?.key.publicKey;
  }
  get activeDevice(): Device {
    return this.device;
  }
  /** The device of the next key while a rotation is between steps 1 and 3. */
  get nextDevice(): Device | undefined {
    return this.next?.device;
  }
  /** The previous device after a rotation's switch, until `retireOld` removes it. */
  get retiringDevice(): Device | undefined {
    return this.retiring;
  }

  /** The whole node table after the initial sync: peers of absent nodes are removed. */
  async setPeers(nodes: WgNode[]): Promise<void> {
    this.fullTable = true;
    await this.reconciler.prune(nodes);
    await this.nextReconciler?.prune(nodes);
    await this.afterTableChange();
  }

  async update(node: WgNode): Promise<void> {
    await this.reconciler.update(node);
    await this.nextReconciler?.update(node);
    await this.afterTableChange();
  }

  async delete(name: string): Promise<void> {
    await this.reconciler.delete(name);
    await this.nextReconciler?.delete(name);
    await this.afterTableChange();
  }

  /** Full pass: reads the device back and repairs drift. Before the first `setPeers` it only
   * adds: the table it holds may lack remote nodes whose sync is still running. */
  async resync(): Promise<void> {
    await this.reconciler.reconcile();
    await this.nextReconciler?.reconcile();
    await this.afterTableChange();
  }

  /** Rotation step 1: the new key on the other slot; publish `nextPublicKey` after this. */
  async beginRotation(): Promise<string> {
    if (this.next) return this.next.key.publicKey;
    if (this.retiring)
      throw new WireguardError(
        'ISTHMUS_WG_ROTATE',
        `the previous rotation's old device ${this.retiring.ifname} still serves peers that did not apply the flip: rotate again once it is retired (status shows it)`,
      );
    this.next = await createNextDevice({
      active: this.device,
      netns: this.o.netns,
      stateDir: this.o.stateDir,
      mtu: tunnelMtu(this.o.underlayMtu ?? 1500),
    });
    this.nextReconciler = this.reconcilerFor(this.next.device);
    this.nextReconciler.seed(this.reconciler);
    return this.next.key.publicKey;
  }

  /** Rotation steps 2-4: once every peer handshaked on the new key, routes move to the new
   * device, the flip is published (`afterSwitch`) and the old device is retired when no peer
   * sends to it any more. `missing`: peers that did not handshake in time (nothing was switched;
   * the old key keeps serving). `stillOnOld`: peers still sending to the old key (it stays; call
   * `retireOld` again later). */
  async completeRotation(
    o: RotationOptions = {},
  ): Promise<{ missing: string[]; stillOnOld: string[] }> {
    const timeoutMs = o.handshakeTimeoutMs ?? 30_000;
    const next = this.next;
    if (!next)
      throw new WireguardError(
        'ISTHMUS_WG_ROTATE',
        'no rotation in progress: call beginRotation first',
      );
    const peers = (await this.device.control.dump()).peers.map((p) => p.publicKey);
    const missing = await awaitHandshakes(next.device, peers, timeoutMs);
    if (missing.length) return { missing, stillOnOld: [] };
    const mark = await markNewDevice(next.device);
    // routes stay on the old device, peer by peer, until each peer shows up on the new key; the
    // mirror copies them into the new device meanwhile, so the peer's flip loses nothing
    const oldPeers = (await this.device.control.dump()).peers.filter((p) => p.allowedIPs.length);
    const table = tunnelRoutes(this.o.nodeName, this.reconciler.table(), this.device.ifname);
    const watched = new Set(oldPeers.flatMap((p) => p.allowedIPs));
    this.onOld = new Set(table.map((r) => r.dst).filter((d) => watched.has(d)));
    await this.steering.mirror(this.device.ifname, next.device.ifname, [...this.onOld]);
    await o.afterSwitch?.();
    // recorded once the flip is out: a crash before this resumes at step 1 (routes back on the
    // old device, whose key peers still route by) and redoes the switch at once
    await activateSlot(this.o.stateDir, next.device);
    this.retiring = this.device;
    this.retireMark = mark;
    this.device = next.device;
    this.key = next.key;
    this.reconciler = this.nextReconciler ?? this.reconcilerFor(next.device);
    this.next = undefined;
    this.nextReconciler = undefined;
    const stillOnOld = await this.retireOld(o.quietMs, o.retireTimeoutMs);
    return { missing: [], stillOnOld };
  }

  /** Rotation step 4: retires the old device once every peer was seen on the new one (it
   * applied the flip) and stopped sending to the old one. Returns the peers not moved yet; call
   * again later (e.g. after a remote cluster reconnects): the old key keeps serving them. */
  async retireOld(quietMs = 2_000, timeoutMs = 40_000): Promise<string[]> {
    const old = this.retiring;
    if (!old) return [];
    // resumed by a restarted agent: no mark from before the switch, so from now
    this.retireMark ??= await markNewDevice(this.device);
    const busy = await awaitPeersMoved({
      old,
      next: this.device,
      mark: this.retireMark,
      quietMs,
      timeoutMs,
      onMoved: (peer) => this.moveToNew(peer.allowedIPs),
      moved: await this.movedByRoutes(old),
    });
    if (busy.length) return busy;
    // what no watched peer owned (a node without a key, a node removed meanwhile) goes too
    await this.moveToNew([...this.onOld]);
    await retireDevice({ netns: this.o.netns, stateDir: this.o.stateDir, old, next: this.device });
    this.retiring = undefined;
    this.retireMark = undefined;
    return [];
  }

  /** Prefixes of a peer seen on the new key: routed to the new device (atomically, `replace`),
   * then no longer mirrored (a window of duplicates, never one without a path). */
  private async moveToNew(prefixes: string[]): Promise<void> {
    const old = this.retiring;
    const moving = prefixes.filter((d) => this.onOld.has(d));
    if (!old || !moving.length) return;
    await this.steering.reroute(moving.map((dst) => ({ dst, dev: this.device.ifname })));
    for (const d of moving) this.onOld.delete(d);
    await this.steering.mirror(old.ifname, this.device.ifname, [...this.onOld]);
  }

  /** Peers whose every prefix is routed through the new device: their move was seen (by this
   * agent or the previous one, the kernel keeps the split), no need to see it again. */
  private async movedByRoutes(old: Device): Promise<string[]> {
    const onNew = new Set(await this.steering.routedVia(this.device.ifname));
    const peers = (await old.control.dump()).peers;
    return peers
      .filter((p) => p.allowedIPs.length && p.allowedIPs.every((d) => onNew.has(d)))
      .map((p) => p.publicKey);
  }

  /** Where a route goes: the old device while its peer has not moved (see `onOld`). */
  private routeOf(r: TunnelRoute): TunnelRoute {
    return this.retiring && this.onOld.has(r.dst) ? { ...r, dev: this.retiring.ifname } : r;
  }

  async status(nowS = Date.now() / 1000): Promise<WireguardStatus> {
    const dump = await this.device.control.dump();
    const byKey = new Map(this.reconciler.table().map((n) => [n.publicKey, n.name]));
    const rows = this.reconciler.status();
    return {
      device: this.device.ifname,
      mode: this.device.mode,
      pid: this.device.pid,
      publicKey: dump.publicKey,
      listenPort: dump.listenPort,
      mtu: tunnelMtu(this.o.underlayMtu ?? 1500),
      peers: dump.peers.map((p) => ({
        node: byKey.get(p.publicKey) ?? '(unknown)',
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIPs: p.allowedIPs,
        latestHandshake: p.latestHandshake,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        ready: p.latestHandshake > 0 && nowS - p.latestHandshake <= READY_HANDSHAKE_S,
      })),
      refused: rows.flatMap((r) =>
        r.state === 'refused' ? [{ node: r.node, reason: r.reason }] : [],
      ),
      rotation: this.next
        ? {
            device: this.next.device.ifname,
            publicKey: this.next.key.publicKey,
            listenPort: this.next.device.port,
          }
        : null,
      retiring: this.retiring?.ifname ?? null,
    };
  }

  /** Picks up a rotation a previous agent left at any step (README "Resuming"): the next
   * device and key are adopted (call `completeRotation` after publishing the next key again), a
   * retiring device is adopted for `retireOld`; a device of the other slot that no record
   * explains is retired too, so no wireguard-go runs unmanaged. */
  private async resume(state: RotationState): Promise<void> {
    const other = otherSlot(state.active);
    const at = { netns: this.o.netns, stateDir: this.o.stateDir };
    if (state.next) {
      try {
        this.next = await openNextDevice({
          ...at,
          active: this.device,
          slot: other,
          mtu: tunnelMtu(this.o.underlayMtu ?? 1500),
        });
        this.nextReconciler = this.reconcilerFor(this.next.device);
        this.resumed = { step: 'next', device: other.ifname };
      } catch (err) {
        // a key torn by the crash (or a device that cannot start): this rotation starts over
        await discardOtherSlot({ ...at, active: state.active });
        this.resumed = { step: 'discarded', device: other.ifname, reason: String(err) };
      }
      return;
    }
    const old = await adoptDevice({ ...at, slot: other });
    if (old) {
      this.retiring = old;
      // the split between the devices is read back from the kernel: it cannot drift
      this.onOld = new Set(await this.steering.routedVia(old.ifname));
      await this.steering.mirror(old.ifname, this.device.ifname, [...this.onOld]);
    } else if (state.retiring) await discardOtherSlot({ ...at, active: state.active });
    if (old || state.retiring)
      this.resumed = { step: old ? 'retiring' : 'discarded', device: other.ifname };
  }

  /** Stops this agent only: the device, peers, routes and strict filter keep working. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.strict?.close();
  }

  /** Removes the node's devices and strict filter (decommission, test teardown). */
  async destroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const devices = [this.device, this.next?.device, this.retiring];
    for (const ifname of new Set(devices.map((d) => d?.ifname)))
      if (ifname) await destroyDevice({ netns: this.o.netns, stateDir: this.o.stateDir, ifname });
    if (this.strict) this.strict.detach();
  }

  private reconcilerFor(device: Device): PeerReconciler {
    return new PeerReconciler(device.control, this.o.nodeName, () =>
      [this.key?.publicKey, this.next?.key.publicKey].filter((k): k is string => !!k),
    );
  }

  private async afterTableChange(): Promise<void> {
    const table = this.reconciler.table();
    await this.steering.apply(
      tunnelRoutes(this.o.nodeName, table, this.device.ifname).map((r) => this.routeOf(r)),
      this.o.strict?.localPodCIDRs ?? [],
      table.flatMap((n) => n.podCIDRs),
      this.fullTable,
    );
  }
}
