// The node datapath: loads bpf/build/pod.o with maps pinned under a bpffs pin root, exposes the
// typed maps, attaches the pod programs to host-side veths, and delivers flow events.
//
//   const dp = openDatapath({ pinRoot: '/run/isthmus/bpf/node1' });
//   dp.endpoints.set('10.1.0.5', { endpointId: 5, ifindex, identity, ingressEnforced, egressEnforced });
//   dp.attachEndpoint({ ifindex });
//   dp.policy.replace(5, entries);
//   const stop = dp.subscribeEvents((e) => ...);
//   dp.removeEndpoint(5);
//   dp.close();   // programs stay attached and maps stay pinned: a restarted agent adopts them
//
// The pod's own node is HOST (identity 1) because the agent writes the node's own IPs into the
// ipcache with identity 1; ingress from identity 1 is always admitted. Enforcement flags live in
// the endpoints rows, so write the endpoint row before (or with) its first applyEndpointPolicy.
import { mkdirSync, existsSync, statfsSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon } from '../native/index.ts';
import { MapNames, ProgramNames } from './constants.ts';
import { KernelDatapath, type PodProgram } from './kernel-datapath.ts';
import type { Datapath, DatapathOptions } from './types.ts';

export type { AttachResult, Datapath, DatapathOptions } from './types.ts';
export { TC_HANDLE, TC_PRIORITY } from './types.ts';

/** statfs f_type of a bpffs (linux/magic.h BPF_FS_MAGIC). */
const BPF_FS_MAGIC = 0xcafe4a11;

const here = dirname(fileURLToPath(import.meta.url));
const defaultObject = (): string => {
  const fromSource = join(here, '../../bpf/build/pod.o');
  return existsSync(fromSource) ? fromSource : join(here, '../../../bpf/build/pod.o');
};

export function openDatapath(opts: DatapathOptions): Datapath {
  const addon = nativeAddon();
  const objectPath = opts.bpfObjectPath ?? defaultObject();
  mkdirSync(opts.pinRoot, { recursive: true });
  if (statfsSync(opts.pinRoot).type !== BPF_FS_MAGIC) {
    throw Object.assign(
      new Error(
        `pin root ${opts.pinRoot} is not on a bpffs: mount one there first (mount -t bpf bpf ${opts.pinRoot})`,
      ),
      { code: 'EDATAPATH_PINROOT' },
    );
  }
  const handle = addon.objectOpen(objectPath, opts.pinRoot);
  try {
    return new LoadedDatapath(handle, opts.pinRoot, opts.netns);
  } catch (e) {
    addon.objectClose(handle);
    throw e;
  }
}

class LoadedDatapath extends KernelDatapath {
  private readonly fromPodFd: number;
  private readonly toPodFd: number;
  private closed = false;

  constructor(
    private readonly handle: number,
    pinRoot: string,
    netns?: string,
  ) {
    super((name) => nativeAddon().mapFd(handle, name), netns);
    const addon = nativeAddon();
    this.fromPodFd = addon.programFd(handle, ProgramNames.fromPod);
    this.toPodFd = addon.programFd(handle, ProgramNames.toPod);
    pinPrograms(pinRoot, { from_pod: this.fromPodFd, to_pod: this.toPodFd });
  }

  mapIds(): Record<string, number> {
    const addon = nativeAddon();
    return Object.fromEntries(
      Object.values(MapNames).map((n) => [n, addon.mapInfo(addon.mapFd(this.handle, n)).id]),
    );
  }

  programIds(): { fromPod: number; toPod: number } {
    const addon = nativeAddon();
    return { fromPod: addon.progInfo(this.fromPodFd).id, toPod: addon.progInfo(this.toPodFd).id };
  }

  protected withProgram<T>(name: PodProgram, use: (fd: number) => T): T {
    return use(name === 'from_pod' ? this.fromPodFd : this.toPodFd);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.closeConsumers();
    nativeAddon().objectClose(this.handle);
  }
}

/** Pins the loaded programs under <pinRoot>/progs, replacing earlier pins, so they outlive us. */
function pinPrograms(pinRoot: string, progs: Record<string, number>): void {
  const dir = join(pinRoot, 'progs');
  mkdirSync(dir, { recursive: true });
  const addon = nativeAddon();
  for (const [name, fd] of Object.entries(progs)) {
    const path = join(dir, name);
    if (existsSync(path)) unlinkSync(path);
    addon.objPin(fd, path);
  }
}
