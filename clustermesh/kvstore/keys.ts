// Key builders and the key parser for the ClusterMesh kvstore layout (DESIGN.md "The kvstore").
// Prefixes are Cilium's stable API (pkg/kvstore BaseKeyPrefix, pkg/clustermesh/store,
// pkg/node/store, pkg/ipcache, pkg/identity/cache).
import ipaddr from 'ipaddr.js';
import { isIpAddress } from './prefixes.ts';
import { RejectReason, type Validated } from './types.ts';

export const BASE_PREFIX = 'cilium';
export const CLUSTER_CONFIG_PREFIX = 'cilium/cluster-config';
export const SYNCED_PREFIX = 'cilium/synced';
export const IDENTITIES_PREFIX = 'cilium/state/identities/v1';
export const IDENTITY_ID_PREFIX = 'cilium/state/identities/v1/id';
export const IPCACHE_PREFIX = 'cilium/state/ip/v1/default';
export const NODES_PREFIX = 'cilium/state/nodes/v1';
export const SERVICES_PREFIX = 'cilium/state/services/v1';

/** The prefixes a remote reader watches and for which a synced canary is written. */
export const SYNCED_STATE_PREFIXES = [
  IDENTITIES_PREFIX,
  IPCACHE_PREFIX,
  NODES_PREFIX,
  SERVICES_PREFIX,
] as const;

/** Cilium's rule for cluster names: lowercase alphanumerics and '-', 1..32, alnum at both ends. */
const CLUSTER_NAME = /^(?:[a-z0-9]|[a-z0-9][a-z0-9-]{0,30}[a-z0-9])$/;
/** A Kubernetes object name segment: no '/', not empty, bounded (DNS-1123 subdomain length). */
const NAME_SEGMENT = /^[^/\s]{1,253}$/;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

export const MAX_NUMERIC_IDENTITY = (1 << 24) - 1;

export function isValidClusterName(name: string): boolean {
  return CLUSTER_NAME.test(name);
}

export type ParsedKey =
  | { kind: 'cluster-config'; cluster: string }
  | { kind: 'synced'; cluster: string; prefix: string }
  | { kind: 'identity'; id: number }
  | { kind: 'ipcache'; ip: string; prefixLength: number | null }
  | { kind: 'node'; cluster: string; node: string }
  | { kind: 'service'; cluster: string; namespace: string; name: string };

/** Thrown by builders when called with a value that cannot form a valid key (a caller bug). */
export class KeyBuildError extends Error {
  readonly code = 'ERR_KVSTORE_KEY';
  constructor(message: string) {
    super(message);
    this.name = 'KeyBuildError';
  }
}

function requireCluster(cluster: string): string {
  if (!isValidClusterName(cluster)) {
    throw new KeyBuildError(
      `invalid cluster name ${JSON.stringify(cluster)}: use 1-32 lowercase letters, digits and '-', starting and ending alphanumeric`,
    );
  }
  return cluster;
}

function requireSegment(what: string, value: string): string {
  if (!NAME_SEGMENT.test(value)) {
    throw new KeyBuildError(
      `invalid ${what} ${JSON.stringify(value)}: must be non-empty without '/' or spaces`,
    );
  }
  return value;
}

export function clusterConfigKey(cluster: string): string {
  return `${CLUSTER_CONFIG_PREFIX}/${requireCluster(cluster)}`;
}

/** `prefix` is a watched state prefix, e.g. NODES_PREFIX; it keeps its slashes. */
export function syncedKey(cluster: string, prefix: string): string {
  if (prefix === '' || prefix.startsWith('/') || prefix.endsWith('/')) {
    throw new KeyBuildError(
      `invalid synced prefix ${JSON.stringify(prefix)}: give a state prefix like ${NODES_PREFIX}`,
    );
  }
  return `${SYNCED_PREFIX}/${requireCluster(cluster)}/${prefix}`;
}

export function identityKey(id: number): string {
  if (!Number.isInteger(id) || id < 1 || id > MAX_NUMERIC_IDENTITY) {
    throw new KeyBuildError(
      `invalid numeric identity ${id}: must be an integer in 1..${MAX_NUMERIC_IDENTITY}`,
    );
  }
  return `${IDENTITY_ID_PREFIX}/${id}`;
}

/** Host entries are keyed by the bare IP; prefix entries (Mask set) by `ip/len`, as Cilium does. */
export function ipcacheKey(ip: string, prefixLength: number | null = null): string {
  if (!isIpAddress(ip))
    throw new KeyBuildError(`invalid IP ${JSON.stringify(ip)} for an ipcache key`);
  const canonical = ipaddr.parse(ip).toString();
  if (prefixLength === null) return `${IPCACHE_PREFIX}/${canonical}`;
  const bits = ipaddr.parse(ip).kind() === 'ipv4' ? 32 : 128;
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > bits) {
    throw new KeyBuildError(`invalid prefix length ${prefixLength} for ${ip}`);
  }
  return `${IPCACHE_PREFIX}/${canonical}/${prefixLength}`;
}

export function nodeKey(cluster: string, node: string): string {
  return `${NODES_PREFIX}/${requireCluster(cluster)}/${requireSegment('node name', node)}`;
}

export function serviceKey(cluster: string, namespace: string, name: string): string {
  return `${SERVICES_PREFIX}/${requireCluster(cluster)}/${requireSegment('namespace', namespace)}/${requireSegment('service name', name)}`;
}

function malformed(key: string, why: string): Validated<ParsedKey> {
  return {
    ok: false,
    error: { reason: RejectReason.MalformedKey, detail: `key ${JSON.stringify(key)}: ${why}` },
  };
}

function under(key: string, prefix: string): string[] | null {
  return key.startsWith(prefix + '/') ? key.slice(prefix.length + 1).split('/') : null;
}

/** Classifies a kvstore key of the layout; anything else is `malformed-key`. */
export function parseKey(key: string): Validated<ParsedKey> {
  let parts: string[] | null;
  if ((parts = under(key, CLUSTER_CONFIG_PREFIX))) return parseClusterConfigKey(key, parts);
  if ((parts = under(key, SYNCED_PREFIX))) return parseSyncedKey(key, parts);
  if ((parts = under(key, IDENTITY_ID_PREFIX))) return parseIdentityKey(key, parts);
  if ((parts = under(key, IPCACHE_PREFIX))) return parseIpcacheKey(key, parts);
  if ((parts = under(key, NODES_PREFIX))) return parseNodeKey(key, parts);
  if ((parts = under(key, SERVICES_PREFIX))) return parseServiceKey(key, parts);
  return malformed(key, 'not a key of the ClusterMesh layout');
}

function parseClusterConfigKey(key: string, [cluster, ...rest]: string[]): Validated<ParsedKey> {
  if (cluster === undefined || rest.length > 0 || !isValidClusterName(cluster)) {
    return malformed(key, 'expected cilium/cluster-config/<cluster> with a valid cluster name');
  }
  return { ok: true, value: { kind: 'cluster-config', cluster } };
}

function parseSyncedKey(key: string, [cluster, ...rest]: string[]): Validated<ParsedKey> {
  const prefix = rest.join('/');
  if (
    cluster === undefined ||
    !isValidClusterName(cluster) ||
    rest.length === 0 ||
    rest.includes('')
  ) {
    return malformed(key, 'expected cilium/synced/<cluster>/<prefix>');
  }
  return { ok: true, value: { kind: 'synced', cluster, prefix } };
}

function parseIdentityKey(key: string, [id, ...rest]: string[]): Validated<ParsedKey> {
  if (id === undefined || rest.length > 0 || !DECIMAL.test(id)) {
    return malformed(key, 'expected cilium/state/identities/v1/id/<decimal identity>');
  }
  const n = Number(id);
  if (n < 1 || n > MAX_NUMERIC_IDENTITY)
    return malformed(key, `identity ${id} is outside 1..${MAX_NUMERIC_IDENTITY}`);
  return { ok: true, value: { kind: 'identity', id: n } };
}

function parseIpcacheKey(key: string, [ip, len, ...rest]: string[]): Validated<ParsedKey> {
  if (ip === undefined || rest.length > 0 || !isIpAddress(ip)) {
    return malformed(key, 'expected cilium/state/ip/v1/default/<ip>[/<prefix length>]');
  }
  if (len === undefined) return { ok: true, value: { kind: 'ipcache', ip, prefixLength: null } };
  const bits = ipaddr.parse(ip).kind() === 'ipv4' ? 32 : 128;
  if (!DECIMAL.test(len) || Number(len) > bits)
    return malformed(key, `invalid prefix length ${JSON.stringify(len)}`);
  return { ok: true, value: { kind: 'ipcache', ip, prefixLength: Number(len) } };
}

function parseNodeKey(key: string, [cluster, node, ...rest]: string[]): Validated<ParsedKey> {
  if (cluster === undefined || node === undefined || rest.length > 0) {
    return malformed(key, 'expected cilium/state/nodes/v1/<cluster>/<node>');
  }
  if (!isValidClusterName(cluster) || !NAME_SEGMENT.test(node))
    return malformed(key, 'invalid cluster or node name');
  return { ok: true, value: { kind: 'node', cluster, node } };
}

function parseServiceKey(
  key: string,
  [cluster, namespace, name, ...rest]: string[],
): Validated<ParsedKey> {
  if (cluster === undefined || namespace === undefined || name === undefined || rest.length > 0) {
    return malformed(key, 'expected cilium/state/services/v1/<cluster>/<namespace>/<name>');
  }
  if (!isValidClusterName(cluster) || !NAME_SEGMENT.test(namespace) || !NAME_SEGMENT.test(name)) {
    return malformed(key, 'invalid cluster, namespace or service name');
  }
  return { ok: true, value: { kind: 'service', cluster, namespace, name } };
}
