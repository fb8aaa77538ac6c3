// What a running lab is made of, written to <runDir>/lab.json so `lab down` and `lab status`
// from another process (or after a crash) know what to end and remove.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../../agent/endpoint/ipam.ts';
import type { LabPlan } from './config.ts';

export interface PodPort {
  port: number;
  protocol: 'TCP' | 'UDP';
  name?: string;
}

export interface LabPod {
  cluster: string;
  node: string;
  namespace: string;
  name: string;
  /** network namespace name and path */
  netns: string;
  netnsPath: string;
  ip: string;
  containerId: string;
  ports: PodPort[];
  /** the pod's echo server, when it declares ports */
  echoPid?: number;
}

export interface LabRecord {
  plan: LabPlan;
  agents: Array<{ node: string; pid: number }>;
  /** pods added through Lab.addPod(s); pods created through the API are the kubelets' */
  pods: LabPod[];
  /** per cluster: etcd and API server PIDs (absent when started without Kubernetes) */
  controlPlanes?: Array<{ cluster: string; etcdPid: number; apiServerPid: number }>;
  kubelets?: Array<{ cluster: string; pid: number }>;
  /** the detached `lab up` supervisor, when the CLI started the lab */
  supervisorPid?: number;
  /** set once Lab.up finished */
  ready?: boolean;
}

export const recordPath = (runDir: string): string => join(runDir, 'lab.json');

export function readRecord(runDir: string): LabRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(runDir), 'utf8')) as LabRecord;
  } catch {
    return undefined;
  }
}

export function writeRecord(record: LabRecord): void {
  writeFileAtomic(recordPath(record.plan.runDir), JSON.stringify(record, null, 1));
}

/**
 * argv that runs one of the repository's TypeScript entry points (`relPath` from the root) with
 * this Node.js: its compiled JavaScript in dist/ when scripts/setup.sh built it (it starts in
 * half the time of tsx: the lab starts a dozen such processes), else through tsx. As with
 * bin/isthmus.js, ISTHMUS_FROM_SOURCE=1 forces the source.
 */
export function nodeEntry(relPath: string): string[] {
  const root = repoRoot();
  const compiled = join(root, 'dist', relPath.replace(/\.ts$/, '.js'));
  if (existsSync(compiled) && !process.env.ISTHMUS_FROM_SOURCE) return [process.execPath, compiled];
  return [process.execPath, '--import', 'tsx', join(root, relPath)];
}

/** The repository root (holds package.json), from source or from dist/. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir)
      throw new Error('cannot find the repository root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
  return dir;
}
