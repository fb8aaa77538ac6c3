// Strict mode: bpf/strict.c on the node's underlay egress, its pod-range LPM map managed from
// here. Maps are pinned by name under the node's pin root (shared with the pod datapath, so drops
// land on the same flow events ring) and the program is pinned next to them; the tc filter is
// replaced atomically on every load, so an agent restart never leaves the underlay unfiltered.
import { existsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import { nativeAddon, type NativeAddon } from '../native/index.ts';
import { mustRun } from '../routing/command.ts';
import { ipIn } from './device.ts';
import { WireguardError } from './types.ts';

/** Mirrors bpf/strict.h: STRICT_F_*, strict_key, isth_strictc_v1 slots, DROP_STRICT_PLAINTEXT. */
export const StrictFlag = { LOCAL: 1, MESH: 2 } as const;
export const DROP_STRICT_PLAINTEXT = 64;
const MAP_CIDRS = 'isth_strict_v1';
const MAP_COUNTERS = 'isth_strictc_v1';
const PROGRAM = 'isth_strict_egress';
/** tc filter slot on the underlay's egress hook; the pod datapath never attaches there. */
export const STRICT_TC = { handle: 0x5731, priority: 57 } as const;

export interface StrictCounters {
  droppedPackets: bigint;
  droppedBytes: bigint;
  passedWireguard: bigint;
}

export interface StrictOptions {
  /** a directory on a bpffs that outlives the agent (the node's pin root) */
  pinRoot: string;
  /** /run/netns/NAME of the node; undefined = the caller's namespace */
  netns?: string;
  /** the node's underlay interface, e.g. eth0 */
  underlayIf: string;
  objectPath?: string;
}

export class StrictFilter {
  private constructor(
    private readonly addon: NativeAddon,
    private readonly handle: number,
    private readonly cidrFd: number,
    private readonly counterFd: number,
    private readonly ifindex: number,
    readonly programId: number,
    private readonly o: StrictOptions,
  ) {}

  /** Loads (reusing pinned maps) and attaches; replaces a filter a previous agent left. */
  static async attach(o: StrictOptions): Promise<StrictFilter> {
    const addon = nativeAddon();
    const path = o.objectPath ?? strictObjectPath();
    const ifindex = await ifindexOf(o.netns, o.underlayIf);
    const handle = addon.objectOpen(path, o.pinRoot);
    try {
      const prog = addon.programFd(handle, PROGRAM);
      pinProgram(addon, prog, join(o.pinRoot, PROGRAM));
      addon.tcEnsureClsact(ifindex, o.netns);
      const id = addon.tcAttach(
        ifindex,
        'egress',
        prog,
        STRICT_TC.handle,
        STRICT_TC.priority,
        true,
        o.netns,
      );
      const fds = [addon.mapFd(handle, MAP_CIDRS), addon.mapFd(handle, MAP_COUNTERS)] as const;
      return new StrictFilter(addon, handle, fds[0], fds[1], ifindex, id, o);
    } catch (err) {
      addon.objectClose(handle);
      throw new WireguardError(
        'ISTHMUS_WG_STRICT',
        `cannot attach strict mode on ${o.underlayIf}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Converges the LPM map on the node's own pod CIDRs and every pod CIDR of the mesh. */
  setRanges(local: string[], mesh: string[]): { added: number; removed: number } {
    const want = new Map<string, number>();
    const add = (cidr: string, flag: number) => {
      const k = keyHex(cidr);
      want.set(k, (want.get(k) ?? 0) | flag);
    };
    for (const c of local) add(c, StrictFlag.LOCAL | StrictFlag.MESH);
    for (const c of mesh) add(c, StrictFlag.MESH);
    const have = this.readRanges();
    let removed = 0;
    for (const k of have.keys())
      if (!want.has(k) && this.addon.mapDelete(this.cidrFd, Buffer.from(k, 'hex'))) removed++;
    let added = 0;
    for (const [k, flags] of want) {
      if (have.get(k) === flags) continue;
      const v = Buffer.alloc(4);
      v.writeUInt32LE(flags, 0);
      this.addon.mapUpdate(this.cidrFd, Buffer.from(k, 'hex'), v);
      added++;
    }
    return { added, removed };
  }

  /** The map's contents as cidr -> STRICT_F_* flags. */
  ranges(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, v] of this.readRanges()) out.set(cidrOfKey(Buffer.from(k, 'hex')), v);
    return out;
  }

  counters(): StrictCounters {
    const cpus = this.addon.possibleCpus();
    const read = (slot: number): bigint => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(slot, 0);
      const val = Buffer.alloc(8 * cpus);
      if (!this.addon.mapLookup(this.counterFd, key, val)) return 0n;
      let sum = 0n;
      for (let c = 0; c < cpus; c++) sum += val.readBigUInt64LE(c * 8);
      return sum;
    };
    return { droppedPackets: read(0), droppedBytes: read(1), passedWireguard: read(2) };
  }

  /** Releases this agent's handles; the filter and the maps stay in the kernel. */
  close(): void {
    this.addon.objectClose(this.handle);
  }

  /** Turns strict mode off on this node (filter detached; pinned maps left for the next load). */
  detach(): void {
    this.addon.tcDetach(this.ifindex, 'egress', STRICT_TC.handle, STRICT_TC.priority, this.o.netns);
    const pin = join(this.o.pinRoot, PROGRAM);
    if (existsSync(pin)) unlinkSync(pin);
    this.close();
  }

  private readRanges(): Map<string, number> {
    const out = new Map<string, number>();
    let key: Buffer | null = null;
    const next = Buffer.alloc(8);
    const val = Buffer.alloc(4);
    while (this.addon.mapNextKey(this.cidrFd, key, next)) {
      key = Buffer.from(next);
      if (this.addon.mapLookup(this.cidrFd, key, val))
        out.set(key.toString('hex'), val.readUInt32LE(0));
    }
    return out;
  }
}

/** strict_key: u32 prefixlen (host order), then the IPv4 network address (network order). */
function keyHex(cidr: string): string {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  if (addr.kind() !== 'ipv4')
    throw new WireguardError('ISTHMUS_WG_STRICT', `strict mode takes IPv4 pod CIDRs, not ${cidr}`);
  const net = ipaddr.IPv4.networkAddressFromCIDR(`${addr}/${len}`);
  const b = Buffer.alloc(8);
  b.writeUInt32LE(len, 0);
  Buffer.from(net.toByteArray()).copy(b, 4);
  return b.toString('hex');
}

function cidrOfKey(b: Buffer): string {
  return `${[...b.subarray(4, 8)].join('.')}/${b.readUInt32LE(0)}`;
}

function pinProgram(addon: NativeAddon, fd: number, path: string): void {
  if (existsSync(path)) unlinkSync(path); // the previous agent's program; the new one replaces it
  addon.objPin(fd, path);
}

async function ifindexOf(netns: string | undefined, ifname: string): Promise<number> {
  const rows = JSON.parse(await mustRun(ipIn(netns, ['-json', 'link', 'show', 'dev', ifname])));
  const idx = (rows as Array<{ ifindex?: number }>)[0]?.ifindex;
  if (!idx) throw new WireguardError('ISTHMUS_WG_STRICT', `no interface ${ifname} in ${netns}`);
  return idx;
}

export function strictObjectPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '../../bpf/build/strict.o'),
    join(here, '../../../bpf/build/strict.o'),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found)
    throw new WireguardError(
      'ISTHMUS_WG_STRICT',
      `bpf/build/strict.o not built: run 'make -C bpf'`,
    );
  return found;
}
