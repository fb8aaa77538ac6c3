// In-memory WgControl with WireGuard's own rules (an allowed IP belongs to one peer: setting it
// on another moves it), for unit tests of the reconciler and the agent's control logic.
import type { DeviceState, PeerSpec, PeerState, WgControl } from './types.ts';

export class FakeWg implements WgControl {
  readonly peers = new Map<string, PeerState>();
  calls = { set: 0, remove: 0 };

  constructor(
    public publicKey = '',
    public listenPort = 51871,
  ) {}

  async dump(): Promise<DeviceState> {
    return {
      publicKey: this.publicKey,
      listenPort: this.listenPort,
      peers: [...this.peers.values()].map((p) => ({ ...p, allowedIPs: [...p.allowedIPs] })),
    };
  }

  async setPeers(peers: PeerSpec[]): Promise<void> {
    if (peers.length) this.calls.set++;
    for (const p of peers) {
      for (const other of this.peers.values())
        other.allowedIPs = other.allowedIPs.filter((ip) => !p.allowedIPs.includes(ip));
      const prev = this.peers.get(p.publicKey);
      this.peers.set(p.publicKey, {
        publicKey: p.publicKey,
        endpoint: p.endpoint,
        allowedIPs: [...p.allowedIPs],
        latestHandshake: prev?.latestHandshake ?? 0,
        rxBytes: prev?.rxBytes ?? 0,
        txBytes: prev?.txBytes ?? 0,
        persistentKeepalive: p.persistentKeepalive ?? 0,
      });
    }
  }

  async removePeers(publicKeys: string[]): Promise<void> {
    if (publicKeys.length) this.calls.remove++;
    for (const k of publicKeys) this.peers.delete(k);
  }
}
