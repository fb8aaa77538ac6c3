// JSON schemas of the kvstore values: structure only (types, required fields, integer ranges).
// Unknown fields are allowed, as Cilium ignores them (a newer writer may add some).
import { Ajv, type ValidateFunction } from 'ajv';
import type { ClusterConfig, ClusterService, IPIdentityPair, NodeRecord } from './types.ts';

const ajv = new Ajv({ allErrors: false, allowUnionTypes: true, strictTypes: false });

const uint = (max: number) => ({ type: 'integer', minimum: 0, maximum: max });
const str = { type: 'string' };
const strMap = { type: ['object', 'null'], additionalProperties: str };
const ipNet = {
  type: 'object',
  required: ['IP', 'Mask'],
  properties: { IP: str, Mask: str },
};
const l4Addr = {
  type: 'object',
  required: ['Protocol', 'Port'],
  properties: { Protocol: str, Port: uint(65535) },
};
// Go marshals a nil map as null, so every map may be null.
const portConfigurations = {
  type: ['object', 'null'],
  additionalProperties: { type: 'object', additionalProperties: l4Addr },
};

export const validateClusterConfigShape: ValidateFunction<ClusterConfig> =
  ajv.compile<ClusterConfig>({
    type: 'object',
    required: ['id'],
    properties: {
      id: uint(0xffffffff),
      capabilities: {
        type: 'object',
        properties: {
          syncedCanaries: { type: 'boolean' },
          maxConnectedClusters: uint(0xffffffff),
          serviceExportsEnabled: { type: ['boolean', 'null'] },
        },
      },
    },
  });

export const validateIPIdentityPairShape: ValidateFunction<IPIdentityPair> =
  ajv.compile<IPIdentityPair>({
    type: 'object',
    required: ['IP', 'ID'],
    properties: {
      IP: str,
      Mask: { type: ['string', 'null'] },
      HostIP: { type: ['string', 'null'] },
      ID: uint(0xffffffff),
      Key: uint(255),
      Metadata: str,
      K8sNamespace: str,
      K8sPodName: str,
      K8sServiceAccount: str,
      NamedPorts: {
        type: ['array', 'null'],
        items: {
          type: 'object',
          required: ['Name', 'Port', 'Protocol'],
          properties: { Name: str, Port: uint(65535), Protocol: str },
        },
      },
    },
  });

export const validateNodeShape: ValidateFunction<NodeRecord> = ajv.compile<NodeRecord>({
  type: 'object',
  required: ['Name', 'Cluster', 'ClusterID'],
  properties: {
    Name: str,
    Cluster: str,
    IPAddresses: {
      type: ['array', 'null'],
      items: { type: 'object', required: ['Type', 'IP'], properties: { Type: str, IP: str } },
    },
    IPv4AllocCIDR: { anyOf: [ipNet, { type: 'null' }] },
    IPv4SecondaryAllocCIDRs: { type: ['array', 'null'], items: ipNet },
    IPv6AllocCIDR: { anyOf: [ipNet, { type: 'null' }] },
    IPv6SecondaryAllocCIDRs: { type: ['array', 'null'], items: ipNet },
    IPv4HealthIP: { type: ['string', 'null'] },
    IPv6HealthIP: { type: ['string', 'null'] },
    IPv4IngressIP: { type: ['string', 'null'] },
    IPv6IngressIP: { type: ['string', 'null'] },
    ClusterID: uint(0xffffffff),
    Source: str,
    EncryptionKey: uint(255),
    Labels: strMap,
    Annotations: strMap,
    NodeIdentity: uint(0xffffffff),
    WireguardPubKey: str,
    BootID: str,
    WireguardPort: { type: 'integer', minimum: 1, maximum: 65535 },
    WireguardPubKeyNext: str,
    WireguardPortNext: { type: 'integer', minimum: 1, maximum: 65535 },
  },
});

export const validateClusterServiceShape: ValidateFunction<ClusterService> =
  ajv.compile<ClusterService>({
    type: 'object',
    required: ['cluster', 'namespace', 'name', 'clusterID'],
    properties: {
      cluster: str,
      namespace: str,
      name: str,
      frontends: portConfigurations,
      backends: portConfigurations,
      hostnames: strMap,
      labels: strMap,
      selector: strMap,
      includeExternal: { type: 'boolean' },
      shared: { type: 'boolean' },
      clusterID: uint(0xffffffff),
    },
  });

/** The first schema error as one line, e.g. `/ID must be integer`. */
export function shapeError(validate: ValidateFunction): string {
  const e = validate.errors?.[0];
  if (!e) return 'value does not match the expected structure';
  return `${e.instancePath || '(root)'} ${e.message ?? 'is invalid'}`;
}
