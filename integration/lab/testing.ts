// Helpers for the lab's privileged tests.
import { randomBytes } from 'node:crypto';
import { runCommand } from '../../agent/routing/command.ts';
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
