// The kubelet's own record of the pods it runs, written atomically after every change, so a
// restarted kubelet adopts its pods and `lab status` / `lab probe` (other processes) see them.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../../agent/endpoint/ipam.ts';
import type { RunningPod } from './types.ts';

export function readPodState(file: string): RunningPod[] {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as { pods?: RunningPod[] };
    return parsed.pods ?? [];
  } catch {
    return [];
  }
}

export class PodState {
  private readonly pods = new Map<string, RunningPod>();

  constructor(private readonly file: string) {
    for (const p of readPodState(file)) this.pods.set(`${p.namespace}/${p.name}`, p);
  }

  get(key: string): RunningPod | undefined {
    return this.pods.get(key);
  }

  keys(): string[] {
    return [...this.pods.keys()];
  }

  all(): RunningPod[] {
    return [...this.pods.values()];
  }

  set(key: string, pod: RunningPod): void {
    this.pods.set(key, pod);
    this.save();
  }

  delete(key: string): void {
    if (this.pods.delete(key)) this.save();
  }

  private save(): void {
    writeFileAtomic(this.file, JSON.stringify({ pods: this.all() }, null, 1));
  }
}
