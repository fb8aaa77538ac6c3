// Peers reconciler: desired WireGuard peers from the node table (one per other node of every
// cluster), applied idempotently and read back from the device. A public key claimed by two nodes
// is refused for both, with the reason in status. Cilium's analogue: pkg/wireguard/agent.
import ipaddr from 'ipaddr.js';
import type { PeerRowStatus, PeerSpec, PeerState, WgControl, WgNode } from './types.ts';
import { WG_PRIMARY, WG_SECONDARY } from './types.ts';

export interface DesiredPeers {
  /** keyed by public key */
  peers: Map<string, PeerSpec & { node: string }>;
  rows: PeerRowStatus[];
}

/** Computes the peers this node wants. `localKeys` are this node's own keys: a remote claiming
 * one is refused too. */
/** Seconds between keepalives to a peer; also makes the first handshake happen at once. */
export const PEER_KEEPALIVE_S = 25;

export function desiredPeers(
  localName: string,
  nodes: Iterable<WgNode>,
  localKeys: string[] = [],
): DesiredPeers {
  const remote = [...nodes].filter((n) => n.name !== localName);
  const claims = new Map<string, Set<string>>();
  for (const k of localKeys) claims.set(k, new Set([localName]));
  for (const n of remote)
    for (const k of keysOf(n)) claims.set(k, (claims.get(k) ?? new Set()).add(n.name));
  const peers: DesiredPeers['peers'] = new Map();
  const rows: PeerRowStatus[] = [];
  for (const n of [...remote].sort((a, b) => a.name.localeCompare(b.name))) {
    const row = peerRow(n, claims, peers);
    rows.push(row);
  }
  return { peers, rows };
}

function peerRow(
  n: WgNode,
  claims: Map<string, Set<string>>,
  peers: DesiredPeers['peers'],
): PeerRowStatus {
  if (!n.publicKey) return { state: 'waiting', node: n.name, reason: 'no WireGuard key published' };
  for (const k of keysOf(n)) {
    const others = [...(claims.get(k) ?? [])].filter((o) => o !== n.name);
    if (others.length)
      return {
        state: 'refused',
        node: n.name,
        reason: `public key ${k} is also claimed by ${others.sort().join(', ')}: neither gets a peer until one of them publishes a new key`,
      };
  }
  peers.set(n.publicKey, {
    node: n.name,
    publicKey: n.publicKey,
    endpoint: `${n.nodeIP}:${n.port ?? WG_PRIMARY.port}`,
    allowedIPs: allowedIPsOf(n),
    // Handshake as soon as both ends know each other, not on the first pod packet (which would
    // wait up to 5 s for a retry when the other end was configured later).
    persistentKeepalive: PEER_KEEPALIVE_S,
  });
  // A rotating node's next key: a handshake-only peer until the node makes it its main key.
  if (n.nextPublicKey)
    peers.set(n.nextPublicKey, {
      node: n.name,
      publicKey: n.nextPublicKey,
      endpoint: `${n.nodeIP}:${n.nextPort ?? WG_SECONDARY.port}`,
      allowedIPs: [],
    });
  return { state: 'configured', node: n.name, publicKey: n.publicKey };
}

function keysOf(n: WgNode): string[] {
  return [n.publicKey, n.nextPublicKey].filter((k): k is string => !!k);
}

/** Pod CIDRs plus the pod IPs (as /32) they do not already cover, canonical and sorted. */
export function allowedIPsOf(n: WgNode): string[] {
  const cidrs = n.podCIDRs.map((c) => ipaddr.parseCIDR(c));
  const out = new Set(
    cidrs.map(([a, len]) => `${ipaddr.IPv4.networkAddressFromCIDR(`${a}/${len}`)}/${len}`),
  );
  for (const ip of n.podIPs) {
    const a = ipaddr.parse(ip);
    if (!cidrs.some((c) => a.kind() === c[0].kind() && a.match(c))) out.add(`${a}/32`);
  }
  return [...out].sort();
}

/** What differs between a desired spec and the peer read back (null when in sync). */
export function peerDrift(want: PeerSpec, have: PeerState | undefined): string | null {
  if (!have) return 'missing';
  if (have.endpoint !== want.endpoint) return `endpoint ${have.endpoint} != ${want.endpoint}`;
  const a = [...have.allowedIPs].sort().join(',');
  const b = [...want.allowedIPs].sort().join(',');
  if (a !== b) return `allowed IPs ${a} != ${b}`;
  if (have.persistentKeepalive !== (want.persistentKeepalive ?? 0)) return 'keepalive';
  return null;
}

/** Level-triggered: holds the node table, converges the device on it on every call. */
export class PeerReconciler {
  private readonly nodes = new Map<string, WgNode>();
  private rows: PeerRowStatus[] = [];
  private synced = false;

  constructor(
    private readonly control: WgControl,
    private readonly localName: string,
    private readonly localKeys: () => string[],
  ) {}

  /** Adds or replaces one node, then converges the peers. */
  async update(node: WgNode): Promise<void> {
    this.nodes.set(node.name, node);
    await this.reconcile();
  }

  /** Forgets a node (absent is not an error), then converges. */
  async delete(name: string): Promise<void> {
    this.nodes.delete(name);
    await this.reconcile();
  }

  /** Replaces the whole table (initial sync done): peers of nodes not in it are removed. */
  async prune(nodes: WgNode[]): Promise<void> {
    this.nodes.clear();
    for (const n of nodes) this.nodes.set(n.name, n);
    this.synced = true;
    await this.reconcile();
  }

  /** Full pass: reads the device back and repairs every difference. Before the first prune
   * only adds and updates, so a restarting agent never removes peers it has not heard of yet. */
  async reconcile(): Promise<{ changed: number; removed: number }> {
    const want = desiredPeers(this.localName, this.nodes.values(), this.localKeys());
    this.rows = want.rows;
    const have = new Map((await this.control.dump()).peers.map((p) => [p.publicKey, p]));
    const stale = this.synced ? [...have.keys()].filter((k) => !want.peers.has(k)) : [];
    const changed = [...want.peers.values()]
      .filter((p) => peerDrift(p, have.get(p.publicKey)) !== null)
      .map(({ node: _node, ...spec }) => spec);
    // Set first, then remove: setting an allowed IP on a peer moves it off its old one (in one
    // transaction), so a prefix moving between keys (a peer's rotation flip) is never ownerless.
    await this.control.setPeers(changed);
    await this.control.removePeers(stale);
    return { changed: changed.length, removed: stale.length };
  }

  /** Takes over another reconciler's table (a new device during a rotation). */
  seed(from: PeerReconciler): void {
    for (const n of from.table()) this.nodes.set(n.name, n);
    this.synced = from.synced;
  }

  status(): PeerRowStatus[] {
    return this.rows;
  }

  table(): WgNode[] {
    return [...this.nodes.values()];
  }
}
