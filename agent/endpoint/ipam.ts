// Host-scope IPAM: hands out addresses of the node's pod CIDR, one per owner (container), and
// persists every change to the node's state dir so a restarted agent keeps its allocations.
// Reserved: the network address, the router IP (first host address: the pods' gateway, see
// manager.ts) and the broadcast address.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';

interface IpamFile {
  cidr: string;
  /** ip -> owner */
  allocations: Record<string, string>;
  /** offset the next search starts from, so freed addresses are not reused at once */
  cursor: number;
}

export class IpamError extends Error {
  constructor(
    message: string,
    readonly code: 'ISTHMUS_IPAM_EXHAUSTED' | 'ISTHMUS_IPAM_BAD_STATE' | 'ISTHMUS_IPAM_BAD_CIDR',
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class Ipam {
  private readonly base: number;
  private readonly size: number;
  private readonly byIp = new Map<string, string>();
  private cursor = 0;

  private constructor(
    readonly cidr: string,
    private readonly stateFile: string | undefined,
  ) {
    const [addr, bits] = parseV4Cidr(cidr);
    if (bits > 30)
      throw new IpamError(
        `pod CIDR ${cidr} is too small: give the node at least a /30`,
        'ISTHMUS_IPAM_BAD_CIDR',
      );
    this.size = 2 ** (32 - bits);
    this.base = toInt(addr) & ~(this.size - 1);
  }

  /** Opens (or creates) the allocation file; a file for another CIDR is refused, not overwritten. */
  static open(cidr: string, stateFile?: string): Ipam {
    const ipam = new Ipam(cidr, stateFile);
    if (stateFile) ipam.load(stateFile);
    return ipam;
  }

  /** The node-side gateway address of every pod: the first host address of the CIDR. */
  get routerIP(): string {
    return fromInt(this.base + 1);
  }

  /** Returns the owner's address, allocating one if it has none. */
  allocate(owner: string): string {
    const existing = this.addressOf(owner);
    if (existing) return existing;
    const usable = this.size - 3; // network, router, broadcast
    for (let i = 0; i < usable; i++) {
      const offset = 2 + ((this.cursor + i) % usable);
      const ip = fromInt(this.base + offset);
      if (this.byIp.has(ip)) continue;
      this.byIp.set(ip, owner);
      this.cursor = offset - 1;
      this.save();
      return ip;
    }
    throw new IpamError(
      `no free address left in ${this.cidr} (${usable} in use): delete pods or give the node a larger pod CIDR`,
      'ISTHMUS_IPAM_EXHAUSTED',
    );
  }

  /** Frees the owner's address; an owner without one is not an error. */
  release(owner: string): void {
    const ip = this.addressOf(owner);
    if (!ip) return;
    this.byIp.delete(ip);
    this.save();
  }

  addressOf(owner: string): string | undefined {
    for (const [ip, o] of this.byIp) if (o === owner) return ip;
    return undefined;
  }

  allocations(): Map<string, string> {
    return new Map(this.byIp);
  }

  private load(file: string): void {
    let raw: string;
    try {
      raw = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new IpamError(`cannot read IPAM state ${file}`, 'ISTHMUS_IPAM_BAD_STATE', {
        cause: err,
      });
    }
    let data: IpamFile;
    try {
      data = JSON.parse(raw) as IpamFile;
    } catch (err) {
      throw new IpamError(
        `IPAM state ${file} is not JSON: fix or remove it`,
        'ISTHMUS_IPAM_BAD_STATE',
        { cause: err },
      );
    }
    if (data.cidr !== this.cidr) {
      throw new IpamError(
        `IPAM state ${file} is for ${data.cidr}, not ${this.cidr}: the node's pod CIDR changed; remove its pods and the file`,
        'ISTHMUS_IPAM_BAD_STATE',
      );
    }
    for (const [ip, owner] of Object.entries(data.allocations)) this.byIp.set(ip, owner);
    this.cursor = data.cursor ?? 0;
  }

  private save(): void {
    if (!this.stateFile) return;
    const data: IpamFile = {
      cidr: this.cidr,
      allocations: Object.fromEntries(this.byIp),
      cursor: this.cursor,
    };
    writeFileAtomic(this.stateFile, JSON.stringify(data, null, 1));
  }
}

/** Writes via a temporary file and rename, so a crash never leaves a half-written state file. */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

function parseV4Cidr(cidr: string): [ipaddr.IPv4, number] {
  try {
    const [addr, bits] = ipaddr.IPv4.parseCIDR(cidr);
    return [addr, bits];
  } catch (err) {
    throw new IpamError(
      `pod CIDR ${JSON.stringify(cidr)} is not an IPv4 CIDR`,
      'ISTHMUS_IPAM_BAD_CIDR',
      { cause: err },
    );
  }
}

const toInt = (a: ipaddr.IPv4): number => a.octets.reduce((n, o) => n * 256 + o, 0);
const fromInt = (n: number): string =>
  [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
