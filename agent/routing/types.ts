// Node routing: native routing over the underlay. Every node routes each other node's pod CIDR
// to that node's underlay IP. Imports nothing from siblings.

/** One row of the node table. */
export interface NodeRoute {
  name: string;
  /** underlay (InternalIP) IPv4 address */
  underlayIP: string;
  /** canonical IPv4 CIDR of the node's pods, e.g. 10.1.2.0/24 */
  podCIDR: string;
}

/** A route this agent owns in the node's main table. */
export interface OwnedRoute {
  dst: string;
  via: string;
}

/** The few netlink operations routing needs; `ip -json` in production, a map in unit tests. */
export interface RouteNetlink {
  /** routes carrying our protocol tag, i.e. the ones this agent installed */
  listOwned(): Promise<OwnedRoute[]>;
  /** create or replace dst -> via (idempotent) */
  replace(route: OwnedRoute): Promise<void>;
  /** delete dst if present; absent is not an error */
  remove(dst: string): Promise<void>;
}

/** Route protocol number tagging Isthmus routes (rtnetlink protocol, 0-255; unassigned value). */
export const ISTHMUS_ROUTE_PROTO = 186;
