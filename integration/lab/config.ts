// The lab config (DESIGN.md "The lab") and the address plan derived from it. Parsed and
// validated once; the plan names every namespace, address, mount and path the lab will create.
import ipaddr from 'ipaddr.js';
import YAML from 'yaml';

export interface ClusterInput {
  name: string;
  id: number;
  podCIDR: string;
  /** defaults to 172.31.<id>.0/24 */
  serviceCIDR?: string;
  nodes: number;
}

export interface LabConfigInput {
  name?: string;
  encryption?: 'wireguard' | 'none';
  /** subnet shared by nodes, control planes and the world host (default 172.30.0.0/24) */
  underlay?: string;
  /** address of the world host on the underlay (default: last host address of the underlay) */
  worldIP?: string;
  clusters?: ClusterInput[];
}

export interface HostPlan {
  /** network namespace name (/run/netns/<netns>) */
  netns: string;
  ip: string;
  /** this host's veth in the underlay namespace (its peer is eth0 in the host) */
  underlayIf: string;
}

export interface NodePlan extends HostPlan {
  name: string;
  cluster: string;
  podCIDR: string;
  /** per-node directory that outlives processes: bpf/ (bpffs mount) and state/ below it */
  dir: string;
  bpffs: string;
  stateDir: string;
}

export interface ClusterPlan {
  name: string;
  id: number;
  podCIDR: string;
  serviceCIDR: string;
  controlPlane: HostPlan;
  nodes: NodePlan[];
}

export interface LabPlan {
  name: string;
  encryption: 'wireguard' | 'none';
  /** /run/isthmus/<name>: lab records, node dirs, logs */
  runDir: string;
  underlay: { netns: string; cidr: string; prefixLen: number; bridge: string };
  world: HostPlan;
  clusters: ClusterPlan[];
}

export class LabConfigError extends Error {
  readonly code = 'ISTHMUS_LAB_CONFIG';
}

export const RUN_ROOT = '/run/isthmus';
const NAME = /^[a-z][a-z0-9]{0,11}$/;
const CLUSTER_NAME = /^[a-z][a-z0-9]{0,15}$/;

export const DEFAULT_CONFIG: Readonly<
  Required<Pick<LabConfigInput, 'name' | 'encryption' | 'underlay' | 'clusters'>>
> = Object.freeze({
  name: 'demo',
  encryption: 'wireguard',
  underlay: '172.30.0.0/24',
  clusters: [
    { name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 2 },
    { name: 'c2', id: 2, podCIDR: '10.2.0.0/16', nodes: 2 },
  ],
});

export function parseLabConfigYaml(text: string): LabPlan {
  let raw: unknown;
  try {
    raw = YAML.parse(text);
  } catch (err) {
    throw new LabConfigError(`lab config is not valid YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return planLab((raw ?? {}) as LabConfigInput);
}

/** Validates the config and lays out every name and address; throws LabConfigError on the first problem. */
export function planLab(input: LabConfigInput): LabPlan {
  const name = input.name ?? DEFAULT_CONFIG.name;
  if (!NAME.test(name))
    fail(
      `lab name ${JSON.stringify(name)} must be 1-12 lowercase letters or digits, starting with a letter (it prefixes every namespace)`,
    );
  const encryption = input.encryption ?? DEFAULT_CONFIG.encryption;
  if (encryption !== 'wireguard' && encryption !== 'none')
    fail(`encryption must be "wireguard" or "none", not ${JSON.stringify(encryption)}`);
  const clusters = input.clusters ?? DEFAULT_CONFIG.clusters;
  if (!Array.isArray(clusters) || clusters.length === 0)
    fail('clusters must list at least one cluster');
  const underlay = parseCidr(input.underlay ?? DEFAULT_CONFIG.underlay, 'underlay');
  checkClusters(clusters);

  const ranges: Array<{ what: string; cidr: Cidr }> = [{ what: 'underlay', cidr: underlay }];
  for (const c of clusters) {
    ranges.push({
      what: `cluster ${c.name} podCIDR`,
      cidr: parseCidr(c.podCIDR, `cluster ${c.name} podCIDR`),
    });
    ranges.push({
      what: `cluster ${c.name} serviceCIDR`,
      cidr: parseCidr(c.serviceCIDR ?? `172.31.${c.id}.0/24`, `cluster ${c.name} serviceCIDR`),
    });
  }
  checkOverlaps(ranges);

  const runDir = `${RUN_ROOT}/${name}`;
  const hosts = hostAllocator(
    underlay,
    clusters.length + clusters.reduce((n, c) => n + c.nodes, 0),
  );
  const worldIP = input.worldIP ?? hosts.last;
  if (!inCidr(worldIP, underlay))
    fail(`worldIP ${worldIP} is not inside the underlay ${underlay.text}`);
  let ifIndex = 0;
  const host = (netns: string, ip: string): HostPlan => ({
    netns,
    ip,
    underlayIf: `u${ifIndex++}`,
  });

  const world = host(`${name}-world`, worldIP);
  const planned: ClusterPlan[] = clusters.map((c) => ({
    name: c.name,
    id: c.id,
    podCIDR: parseCidr(c.podCIDR, '').text,
    serviceCIDR: parseCidr(c.serviceCIDR ?? `172.31.${c.id}.0/24`, '').text,
    controlPlane: host(`${name}-${c.name}-cp`, hosts.next(worldIP)),
    nodes: [],
  }));
  for (const [i, c] of clusters.entries()) {
    for (let n = 0; n < c.nodes; n++) {
      const nodeName = `${c.name}-node${n + 1}`;
      const dir = `${runDir}/${nodeName}`;
      planned[i]!.nodes.push({
        ...host(`${name}-${nodeName}`, hosts.next(worldIP)),
        name: nodeName,
        cluster: c.name,
        podCIDR: nodeSubnet(parseCidr(c.podCIDR, ''), n),
        dir,
        bpffs: `${dir}/bpf`,
        stateDir: `${dir}/state`,
      });
    }
  }
  return {
    name,
    encryption,
    runDir,
    underlay: {
      netns: `${name}-underlay`,
      cidr: underlay.text,
      prefixLen: underlay.bits,
      bridge: 'br0',
    },
    world,
    clusters: planned,
  };
}

interface Cidr {
  text: string;
  addr: ipaddr.IPv4;
  bits: number;
}

function fail(msg: string): never {
  throw new LabConfigError(msg);
}

function parseCidr(text: string, what: string): Cidr {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(String(text));
  } catch {
    return fail(`${what} ${JSON.stringify(text)} is not a CIDR such as 10.1.0.0/16`);
  }
  if (parsed[0].kind() !== 'ipv4') fail(`${what} ${text}: the lab is IPv4 only`);
  const network = ipaddr.IPv4.networkAddressFromCIDR(String(text));
  return { text: `${network.toString()}/${parsed[1]}`, addr: network, bits: parsed[1] };
}

function checkClusters(clusters: ClusterInput[]): void {
  const names = new Set<string>();
  const ids = new Set<number>();
  for (const c of clusters) {
    if (!CLUSTER_NAME.test(String(c.name)))
      fail(
        `cluster name ${JSON.stringify(c.name)} must be 1-16 lowercase letters or digits, starting with a letter`,
      );
    if (!Number.isInteger(c.id) || c.id < 1 || c.id > 255)
      fail(`cluster ${c.name}: id ${c.id} must be an integer from 1 to 255`);
    if (names.has(c.name)) fail(`cluster name ${c.name} appears twice`);
    if (ids.has(c.id))
      fail(`cluster id ${c.id} appears twice (${c.name}); cluster ids are unique in a mesh`);
    names.add(c.name);
    ids.add(c.id);
    const pod = parseCidr(c.podCIDR, `cluster ${c.name} podCIDR`);
    if (!Number.isInteger(c.nodes) || c.nodes < 1)
      fail(`cluster ${c.name}: nodes must be a positive integer`);
    if (pod.bits > 24 || c.nodes > 2 ** (24 - pod.bits))
      fail(`cluster ${c.name}: podCIDR ${pod.text} has no room for ${c.nodes} node /24s`);
  }
}

function checkOverlaps(ranges: Array<{ what: string; cidr: Cidr }>): void {
  for (const [i, a] of ranges.entries()) {
    for (const b of ranges.slice(i + 1)) {
      if (
        a.cidr.addr.match(b.cidr.addr, b.cidr.bits) ||
        b.cidr.addr.match(a.cidr.addr, a.cidr.bits)
      ) {
        fail(
          `${a.what} ${a.cidr.text} overlaps ${b.what} ${b.cidr.text}: give each range its own addresses`,
        );
      }
    }
  }
}

const toInt = (a: ipaddr.IPv4): number => a.octets.reduce((n, o) => n * 256 + o, 0);
const fromInt = (n: number): string =>
  [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
const inCidr = (ip: string, c: Cidr): boolean =>
  ipaddr.IPv4.isValidFourPartDecimal(ip) && ipaddr.IPv4.parse(ip).match(c.addr, c.bits);

/** Node n of a cluster gets the n-th /24 of the cluster's pod CIDR. */
function nodeSubnet(pod: Cidr, n: number): string {
  return `${fromInt(toInt(pod.addr) + n * 256)}/24`;
}

/** Underlay addresses: control planes and nodes from .2 upward, the world host at the top. */
function hostAllocator(underlay: Cidr, needed: number) {
  const base = toInt(underlay.addr);
  const size = 2 ** (32 - underlay.bits);
  if (needed + 3 > size - 1)
    fail(
      `underlay ${underlay.text} has room for ${Math.max(0, size - 4)} hosts, the lab needs ${needed + 1}: use a larger underlay`,
    );
  let next = base + 2;
  return {
    last: fromInt(base + size - 2),
    next(skip: string): string {
      if (fromInt(next) === skip) next++;
      return fromInt(next++);
    },
  };
}
