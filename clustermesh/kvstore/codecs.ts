// Value codecs: encode writes the JSON Cilium's Go structs marshal to (same field names and order,
// Go's zero values: nil slices/maps as null, empty net.IP as ""); decode parses untrusted bytes
// into a typed value or a rejection (`malformed-json` / `malformed-value`). Decoding checks form
// only; whether a remote may say it is validate.ts's job.
import ipaddr from 'ipaddr.js';
import { isIpAddress } from './prefixes.ts';
import type { ValidateFunction } from 'ajv';
import {
  RejectReason,
  type ClusterConfig,
  type ClusterService,
  type IPIdentityPair,
  type IPNetJson,
  type NodeRecord,
  type Validated,
} from './types.ts';
import {
  shapeError,
  validateClusterConfigShape,
  validateClusterServiceShape,
  validateIPIdentityPairShape,
  validateNodeShape,
} from './schemas.ts';

function malformedValue<T>(detail: string): Validated<T> {
  return { ok: false, error: { reason: RejectReason.MalformedValue, detail } };
}

function parseJson<T>(text: string, validate: ValidateFunction<T>, what: string): Validated<T> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    const detail = `${what} is not valid JSON: ${(cause as Error).message}`;
    return { ok: false, error: { reason: RejectReason.MalformedJson, detail } };
  }
  if (!validate(raw)) return malformedValue(`${what}: ${shapeError(validate)}`);
  return { ok: true, value: raw };
}

// ---- CIDRs in Go's net.IPNet JSON form --------------------------------------------------------

/** `10.1.0.0/24` → `{"IP":"10.1.0.0","Mask":"////AA=="}` (the network address, 4- or 16-byte mask). */
export function cidrToIpNet(cidr: string): IPNetJson {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  const bytes = addr.kind() === 'ipv4' ? 4 : 16;
  const mask = Buffer.alloc(bytes);
  for (let bit = 0; bit < len; bit++) mask[bit >> 3]! |= 0x80 >> (bit & 7);
  const network = ipaddr.fromByteArray(addr.toByteArray().map((b, i) => b & mask[i]!));
  return { IP: network.toString(), Mask: mask.toString('base64') };
}

/** Prefix length of a base64 mask of `bytes` bytes, or null when not a contiguous mask. */
export function maskPrefixLength(maskBase64: string, bytes: 4 | 16): number | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(maskBase64)) return null;
  const mask = Buffer.from(maskBase64, 'base64');
  if (mask.length !== bytes) return null;
  const bits = [...mask].map((b) => b.toString(2).padStart(8, '0')).join('');
  return /^1*0*$/.test(bits) ? bits.replace(/0+$/, '').length : null;
}

/** `{"IP":..,"Mask":..}` → canonical `ip/len`, or a rejection for bad IPs or masks. */
export function ipNetToCidr(net: IPNetJson): Validated<string> {
  if (!isIpAddress(net.IP))
    return malformedValue(`CIDR IP ${JSON.stringify(net.IP)} is not an IP address`);
  const addr = ipaddr.parse(net.IP);
  const len = maskPrefixLength(net.Mask, addr.kind() === 'ipv4' ? 4 : 16);
  if (len === null)
    return malformedValue(
      `CIDR mask ${JSON.stringify(net.Mask)} is not a contiguous mask for ${net.IP}`,
    );
  const cidr = cidrToIpNet(`${addr.toString()}/${len}`);
  if (cidr.IP !== addr.toString()) return malformedValue(`CIDR ${net.IP}/${len} has host bits set`);
  return { ok: true, value: `${cidr.IP}/${len}` };
}

function checkIp(what: string, ip: string, allowEmpty: boolean): string | null {
  if (ip === '' && allowEmpty) return null;
  return isIpAddress(ip) ? null : `${what} ${JSON.stringify(ip)} is not an IP address`;
}

// ---- cluster config ---------------------------------------------------------------------------

export function encodeClusterConfig(config: ClusterConfig): string {
  return JSON.stringify({
    id: config.id,
    ...(config.capabilities ? { capabilities: config.capabilities } : {}),
  });
}

export function decodeClusterConfig(text: string): Validated<ClusterConfig> {
  return parseJson(text, validateClusterConfigShape, 'cluster config');
}

// ---- synced canary ----------------------------------------------------------------------------

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Go's time.RFC3339 form (whole seconds, UTC `Z`), as Cilium writes its synced canaries. */
export function encodeSyncedTime(at: Date): string {
  return at.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function decodeSyncedTime(text: string): Validated<Date> {
  const at = new Date(text);
  if (!RFC3339.test(text) || Number.isNaN(at.getTime())) {
    return malformedValue(
      `synced canary ${JSON.stringify(text.slice(0, 64))} is not an RFC 3339 time`,
    );
  }
  return { ok: true, value: at };
}

// ---- ipcache ----------------------------------------------------------------------------------

export function encodeIPIdentityPair(p: IPIdentityPair): string {
  return JSON.stringify({
    IP: p.IP,
    Mask: p.Mask,
    HostIP: p.HostIP,
    ID: p.ID,
    Key: p.Key,
    Metadata: p.Metadata,
    ...(p.K8sNamespace ? { K8sNamespace: p.K8sNamespace } : {}),
    ...(p.K8sPodName ? { K8sPodName: p.K8sPodName } : {}),
    ...(p.K8sServiceAccount ? { K8sServiceAccount: p.K8sServiceAccount } : {}),
    ...(p.NamedPorts && p.NamedPorts.length > 0 ? { NamedPorts: p.NamedPorts } : {}),
  });
}

export function decodeIPIdentityPair(text: string): Validated<IPIdentityPair> {
  const parsed = parseJson(text, validateIPIdentityPairShape, 'ipcache entry');
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  const pair: IPIdentityPair = {
    ...v,
    Mask: v.Mask ?? null,
    HostIP: v.HostIP ?? '',
    Key: v.Key ?? 0,
    Metadata: v.Metadata ?? '',
  };
  const ipError = checkIp('IP', pair.IP, false) ?? checkIp('HostIP', pair.HostIP, true);
  if (ipError) return malformedValue(`ipcache entry: ${ipError}`);
  if (pair.Mask !== null) {
    const bytes = ipaddr.parse(pair.IP).kind() === 'ipv4' ? 4 : 16;
    if (maskPrefixLength(pair.Mask, bytes) === null)
      return malformedValue(`ipcache entry: bad Mask ${JSON.stringify(pair.Mask)}`);
  }
  return { ok: true, value: pair };
}

/** The ipcache key's IP/prefix for an entry: bare IP for hosts, `ip/len` with a Mask. */
export function ipcachePrefixOf(p: IPIdentityPair): { ip: string; prefixLength: number | null } {
  if (p.Mask === null) return { ip: p.IP, prefixLength: null };
  const bytes = ipaddr.parse(p.IP).kind() === 'ipv4' ? 4 : 16;
  return { ip: p.IP, prefixLength: maskPrefixLength(p.Mask, bytes) };
}

// ---- nodes ------------------------------------------------------------------------------------

export function encodeNode(n: NodeRecord): string {
  return JSON.stringify({
    Name: n.Name,
    Cluster: n.Cluster,
    IPAddresses: n.IPAddresses,
    IPv4AllocCIDR: n.IPv4AllocCIDR,
    IPv4SecondaryAllocCIDRs: n.IPv4SecondaryAllocCIDRs ?? null,
    IPv6AllocCIDR: n.IPv6AllocCIDR,
    IPv6SecondaryAllocCIDRs: n.IPv6SecondaryAllocCIDRs ?? null,
    IPv4HealthIP: n.IPv4HealthIP ?? '',
    IPv6HealthIP: n.IPv6HealthIP ?? '',
    IPv4IngressIP: n.IPv4IngressIP ?? '',
    IPv6IngressIP: n.IPv6IngressIP ?? '',
    ClusterID: n.ClusterID,
    Source: n.Source,
    EncryptionKey: n.EncryptionKey,
    Labels: n.Labels ?? null,
    Annotations: n.Annotations ?? null,
    NodeIdentity: n.NodeIdentity ?? 0,
    WireguardPubKey: n.WireguardPubKey,
    BootID: n.BootID ?? '',
    ...(n.WireguardPort !== undefined && { WireguardPort: n.WireguardPort }),
    ...(n.WireguardPubKeyNext && { WireguardPubKeyNext: n.WireguardPubKeyNext }),
    ...(n.WireguardPortNext !== undefined && { WireguardPortNext: n.WireguardPortNext }),
  });
}

export function decodeNode(text: string): Validated<NodeRecord> {
  const parsed = parseJson(text, validateNodeShape, 'node');
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  const node: NodeRecord = {
    ...v,
    IPAddresses: v.IPAddresses ?? null,
    IPv4AllocCIDR: v.IPv4AllocCIDR ?? null,
    IPv6AllocCIDR: v.IPv6AllocCIDR ?? null,
    Source: v.Source ?? '',
    EncryptionKey: v.EncryptionKey ?? 0,
    WireguardPubKey: v.WireguardPubKey ?? '',
  };
  for (const a of node.IPAddresses ?? []) {
    const e = checkIp(`node address (${a.Type})`, a.IP, false);
    if (e) return malformedValue(`node ${node.Name}: ${e}`);
  }
  for (const field of ['IPv4HealthIP', 'IPv6HealthIP', 'IPv4IngressIP', 'IPv6IngressIP'] as const) {
    const e = checkIp(field, node[field] ?? '', true);
    if (e) return malformedValue(`node ${node.Name}: ${e}`);
  }
  for (const net of allocCidrNets(node)) {
    const r = ipNetToCidr(net);
    if (!r.ok) return malformedValue(`node ${node.Name}: ${r.error.detail}`);
  }
  for (const field of ['WireguardPubKey', 'WireguardPubKeyNext'] as const) {
    const key = node[field];
    if (key && !isWireguardKey(key))
      return malformedValue(`node ${node.Name}: ${field} is not a base64 32-byte key`);
  }
  if (node.WireguardPubKeyNext === '') delete node.WireguardPubKeyNext;
  return { ok: true, value: node };
}

/** A WireGuard public key as Cilium and `wg` write it: base64 of 32 bytes. */
export function isWireguardKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(key) && Buffer.from(key, 'base64').length === 32;
}

function allocCidrNets(n: NodeRecord): IPNetJson[] {
  return [
    ...(n.IPv4AllocCIDR ? [n.IPv4AllocCIDR] : []),
    ...(n.IPv4SecondaryAllocCIDRs ?? []),
    ...(n.IPv6AllocCIDR ? [n.IPv6AllocCIDR] : []),
    ...(n.IPv6SecondaryAllocCIDRs ?? []),
  ];
}

/** Every pod CIDR of a decoded node as canonical `ip/len` (primary first). */
export function nodePodCidrs(n: NodeRecord): string[] {
  return allocCidrNets(n).flatMap((net) => {
    const r = ipNetToCidr(net);
    return r.ok ? [r.value] : [];
  });
}

/** Every address of a node: IPAddresses plus health and ingress IPs. */
export function nodeIps(n: NodeRecord): string[] {
  const extra = [n.IPv4HealthIP, n.IPv6HealthIP, n.IPv4IngressIP, n.IPv6IngressIP].filter(
    (ip): ip is string => !!ip,
  );
  return [...(n.IPAddresses ?? []).map((a) => a.IP), ...extra];
}

// ---- services ---------------------------------------------------------------------------------

export function encodeClusterService(s: ClusterService): string {
  return JSON.stringify({
    cluster: s.cluster,
    namespace: s.namespace,
    name: s.name,
    frontends: s.frontends,
    backends: s.backends,
    ...(s.hostnames && Object.keys(s.hostnames).length > 0 ? { hostnames: s.hostnames } : {}),
    labels: s.labels,
    selector: s.selector,
    includeExternal: s.includeExternal,
    shared: s.shared,
    clusterID: s.clusterID,
  });
}

export function decodeClusterService(text: string): Validated<ClusterService> {
  const parsed = parseJson(text, validateClusterServiceShape, 'service');
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  const svc: ClusterService = {
    ...v,
    frontends: v.frontends ?? {},
    backends: v.backends ?? {},
    labels: v.labels ?? {},
    selector: v.selector ?? {},
    includeExternal: v.includeExternal ?? false,
    shared: v.shared ?? false,
  };
  for (const ip of [...Object.keys(svc.frontends), ...Object.keys(svc.backends)]) {
    const e = checkIp('service address', ip, false);
    if (e) return malformedValue(`service ${svc.namespace}/${svc.name}: ${e}`);
  }
  return { ok: true, value: svc };
}
