// Cluster IP allocation for Services from the service CIDR, as kube-apiserver does: a chosen or
// requested IP is claimed by a key written in the same etcd transaction as the Service.
import ipaddr from 'ipaddr.js';
import { randomInt } from 'node:crypto';
import type { KubeObject } from './store.ts';
import { invalid } from './status.ts';

type Obj = Record<string, unknown>;

export class ServiceIpAllocator {
  private readonly base: number;
  private readonly size: number;

  constructor(
    readonly cidr: string,
    private readonly claimRoot: string,
  ) {
    const [addr, bits] = ipaddr.parseCIDR(cidr);
    if (addr.kind() !== 'ipv4' || bits > 30)
      throw new Error(`service CIDR "${cidr}" must be IPv4 with room for hosts (at most /30)`);
    // >>> 0: `&` yields a signed 32-bit int, negative for CIDRs at or above 128.0.0.0
    this.base = (ipToInt(addr.toString()) & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0)) >>> 0;
    this.size = 2 ** (32 - bits);
  }

  claimKey(ip: string): string {
    return `${this.claimRoot}/${ip}`;
  }

  /** Claims held by a stored Service (released when it is deleted). */
  claimsOf(svc: KubeObject): string[] {
    const ip = (svc['spec'] as Obj | undefined)?.['clusterIP'];
    return typeof ip === 'string' && ip !== 'None' && ip !== '' && this.contains(ip)
      ? [this.claimKey(ip)]
      : [];
  }

  /** Whether the Service gets a cluster IP at all (not ExternalName, not headless). */
  wantsIp(svc: KubeObject): boolean {
    const spec = svc['spec'] as Obj;
    return spec['type'] !== 'ExternalName' && spec['clusterIP'] !== 'None';
  }

  /** Candidates to try: the requested IP only, or host addresses from a random start. */
  *candidates(svc: KubeObject): Generator<string> {
    const requested = (svc['spec'] as Obj)['clusterIP'];
    if (typeof requested === 'string' && requested !== '') {
      if (!ipaddr.IPv4.isValid(requested) || !this.contains(requested)) {
        throw invalid('Service', '', svc.metadata.name ?? '', [
          {
            reason: 'FieldValueInvalid',
            field: 'spec.clusterIP',
            message: `Invalid value: "${requested}": provided IP is not in the valid range. The range of valid IPs is ${this.cidr}`,
          },
        ]);
      }
      yield requested;
      return;
    }
    const hosts = this.size - 2;
    const start = randomInt(hosts);
    for (let i = 0; i < hosts; i++) yield intToIp(this.base + 1 + ((start + i) % hosts));
  }

  /** Writes the chosen IP into the Service the way kube-apiserver reports it. */
  assign(svc: KubeObject, ip: string): void {
    const spec = svc['spec'] as Obj;
    spec['clusterIP'] = ip;
    spec['clusterIPs'] = [ip];
    spec['ipFamilies'] ??= ['IPv4'];
    spec['ipFamilyPolicy'] ??= 'SingleStack';
  }

  private contains(ip: string): boolean {
    const n = ipToInt(ip);
    return n >= this.base && n < this.base + this.size;
  }
}

function ipToInt(ip: string): number {
  return ipaddr.IPv4.parse(ip).octets.reduce((acc, o) => acc * 256 + o, 0);
}

function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}
