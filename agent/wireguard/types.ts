// WireGuard types shared by the device, the peers reconciler, routes, strict mode and rotation.
// Imports nothing from siblings.

/** The primary device and its UDP port (DESIGN.md: the mesh's WireGuard port). */
export const WG_PRIMARY = { ifname: 'isthmus_wg0', port: 51871 } as const;
/** The second device used while a key rotation is in flight (make-before-break). */
export const WG_SECONDARY = { ifname: 'isthmus_wg1', port: 51872 } as const;
/** Both mesh WireGuard ports; strict mode lets only these through for pod ranges. */
export const WG_PORTS = [WG_PRIMARY.port, WG_SECONDARY.port] as const;
/** Outer IPv4 (20) + UDP (8) + WireGuard header (16) + tag (16) + padding headroom; the
 * figure WireGuard's own tools use for IPv6 underlays too. */
export const WG_OVERHEAD = 80;
/** A peer is ready when its last handshake is this recent (WireGuard rekeys every 120 s). */
export const READY_HANDSHAKE_S = 180;

export interface DeviceSlot {
  ifname: string;
  port: number;
}

/** One row of the node table, as the daemon feeds it (Kubernetes nodes and mesh node records). */
export interface WgNode {
  /** unique in the mesh: `<cluster>/<node>` */
  name: string;
  /** underlay (InternalIP) IPv4 */
  nodeIP: string;
  podCIDRs: string[];
  /** pod IPs hosted on the node outside its pod CIDRs (e.g. from the ipcache); /32 each */
  podIPs: string[];
  /** base64 X25519 public key (node record `WireguardPubKey`); absent = no peer yet */
  publicKey?: string;
  /** the key a rotating node publishes next to the old one (`WireguardPubKeyNext`) */
  nextPublicKey?: string;
  /** the port the node's current key listens on (default WG_PRIMARY.port) */
  port?: number;
  /** the port of the next key's device (default WG_SECONDARY.port) */
  nextPort?: number;
}

/** Desired configuration of one peer on one device. */
export interface PeerSpec {
  publicKey: string;
  endpoint: string;
  allowedIPs: string[];
  persistentKeepalive?: number;
}

/** One peer as read back from the device (`wg show <if> dump`). */
export interface PeerState {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  /** unix seconds, 0 = never */
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

export interface DeviceState {
  publicKey: string;
  listenPort: number;
  peers: PeerState[];
}

/** Device configuration, the one code path for kernel WireGuard and wireguard-go (`wg`). */
export interface WgControl {
  dump(): Promise<DeviceState>;
  /** sets or replaces each peer's endpoint and allowed IPs (one transaction) */
  setPeers(peers: PeerSpec[]): Promise<void>;
  /** removing an absent peer is not an error */
  removePeers(publicKeys: string[]): Promise<void>;
}

export type PeerRowStatus =
  | { state: 'configured'; node: string; publicKey: string }
  | { state: 'refused'; node: string; reason: string }
  | { state: 'waiting'; node: string; reason: string };

export interface PeerStatus {
  node: string;
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  ready: boolean;
}

export interface WireguardStatus {
  device: string;
  mode: 'kernel' | 'wireguard-go';
  pid: number | null;
  publicKey: string;
  listenPort: number;
  mtu: number;
  peers: PeerStatus[];
  refused: Array<{ node: string; reason: string }>;
  rotation: { device: string; publicKey: string; listenPort: number } | null;
  /** the previous device after a rotation's switch, until no peer sends to it */
  retiring?: string | null;
}

export class WireguardError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
