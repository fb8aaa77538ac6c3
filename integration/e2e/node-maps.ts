// A lab node's kernel datapath as seen from the test process: the node agent's pinned maps and
// programs, opened from their pins on the node's bpffs. Nothing is loaded and nothing is re-pinned,
// so opening it never changes what the agent runs (a fresh openDatapath would load and pin new
// programs). Until the policy engine is wired into the agent, tests write identities and policy
// entries through these typed wrappers.
import { join } from 'node:path';
import { MapNames, ProgramNames } from '../../agent/datapath/constants.ts';
import { KernelDatapath, type PodProgram } from '../../agent/datapath/kernel-datapath.ts';
import { nativeAddon } from '../../agent/native/index.ts';
import type { NodePlan } from '../lab/config.ts';
import { netnsPath } from '../lab/netns.ts';

/** Where the node agent pins its programs (agent/datapath/datapath.ts pinPrograms). */
export const programPin = (node: NodePlan, name: PodProgram): string =>
  join(node.bpffs, 'progs', name);

/** Kernel ids of the node's pinned maps, by map name (read from the pins, not from a load). */
export function pinnedMapIds(node: NodePlan): Record<string, number> {
  const addon = nativeAddon();
  return Object.fromEntries(
    Object.values(MapNames).map((name) => {
      const fd = addon.objGet(join(node.bpffs, name));
      try {
        return [name, addon.mapInfo(fd).id];
      } finally {
        addon.closeFd(fd);
      }
    }),
  );
}

/** Kernel ids of the programs pinned under <bpffs>/progs. */
export function pinnedProgramIds(node: NodePlan): { fromPod: number; toPod: number } {
  const addon = nativeAddon();
  const idOf = (name: PodProgram): number => {
    const fd = addon.objGet(programPin(node, name));
    try {
      return addon.progInfo(fd).id;
    } finally {
      addon.closeFd(fd);
    }
  };
  return { fromPod: idOf(ProgramNames.fromPod), toPod: idOf(ProgramNames.toPod) };
}

export class NodeMaps extends KernelDatapath {
  private readonly fds: number[];

  constructor(readonly node: NodePlan) {
    const fds: number[] = [];
    super((name) => {
      const opened = nativeAddon().objGet(join(node.bpffs, name));
      fds.push(opened);
      return opened;
    }, netnsPath(node.netns));
    this.fds = fds;
  }

  mapIds(): Record<string, number> {
    return pinnedMapIds(this.node);
  }

  programIds(): { fromPod: number; toPod: number } {
    return pinnedProgramIds(this.node);
  }

  /** Opens the pin on every attach, so a restarted agent's new programs are the ones attached. */
  protected withProgram<T>(name: PodProgram, use: (fd: number) => T): T {
    const addon = nativeAddon();
    const prog = addon.objGet(programPin(this.node, name));
    try {
      return use(prog);
    } finally {
      addon.closeFd(prog);
    }
  }

  close(): void {
    this.closeConsumers();
    const addon = nativeAddon();
    for (const fd of this.fds.splice(0)) addon.closeFd(fd);
  }
}

export const openNodeMaps = (node: NodePlan): NodeMaps => new NodeMaps(node);
