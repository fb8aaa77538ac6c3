// Node annotations that carry a node's WireGuard keys: the agent publishes them on its Node
// object, the clustermesh API server mirrors them into the node record, so remote clusters peer.
// One place for the names (agent/daemon/encryption.ts, clustermesh/apiserver/records.ts).

/** Cilium's annotation for a node's WireGuard public key (node record `WireguardPubKey`). */
export const WG_KEY_ANNOTATION = 'network.cilium.io/wg-pub-key';
/** Ours: the port of the key above (`WireguardPort`), and the next key (+ port) while a
 * rotation runs (`WireguardPubKeyNext`, `WireguardPortNext`). */
export const WG_PORT_ANNOTATION = 'network.isthmus.io/wg-port';
export const WG_NEXT_KEY_ANNOTATION = 'network.isthmus.io/wg-next-pub-key';
export const WG_NEXT_PORT_ANNOTATION = 'network.isthmus.io/wg-next-port';

/** A port annotation's value, or undefined when absent or not a port. */
export function annotatedPort(value: string | undefined): number | undefined {
  if (!value || !/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= 1 && port <= 65535 ? port : undefined;
}
