// Helpers for the lab's privileged tests.
import { randomBytes } from 'node:crypto';
import { runCommand } from '../../agent/routing/command.ts';
import { planLab, type LabPlan } from './config.ts';
import type { Lab } from './lab.ts';
import { labLeftovers } from './leftovers.ts';
import { cniPluginPath } from './pods.ts';
import { repoRoot } from './record.ts';

/** A lab name no parallel run uses: prefix + 6 hex digits (lab names are at most 12 chars). */
export function uniqueLabName(prefix: string): string {
  return prefix.slice(0, 6) + randomBytes(3).toString('hex');
}

/**
 * Builds what the lab runs compiled (the CNI plugin, the C tools) as `npm test` would. tsc emits
 * even when files elsewhere in the tree have type errors, so the build's own status is not final:
 * the plugin's freshness check is.
 */
export async function ensureBuilt(): Promise<string> {
  const build = await runCommand(['bash', `${repoRoot()}/scripts/setup.sh`, '--build-only']);
  try {
    return cniPluginPath();
  } catch (err) {
    throw new Error(`build did not produce a fresh CNI plugin:\n${build.stdout}${build.stderr}`, {
      cause: err,
    });
  }
}

/** The multi-cluster test lab: c1 (ID 1, 10.1.0.0/16) and c2 (ID 2, 10.2.0.0/16) of `nodes`
 * nodes each, plain native routing (encryption has its own tests). */
export function twoClusterPlan(name: string, nodes: number): LabPlan {
  return planLab({
    name,
    encryption: 'none',
    clusters: [
      { name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes },
      { name: 'c2', id: 2, podCIDR: '10.2.0.0/16', nodes },
    ],
  });
}

/** For test.after.always: takes the lab down (when it came up) and throws on any leftover. */
export async function downWithoutLeftovers(lab: Lab | undefined, name: string): Promise<void> {
  if (!lab) return;
  await lab.down();
  const left = await labLeftovers(name);
  if (left.length) throw new Error(`leftovers: ${JSON.stringify(left)}`);
}
