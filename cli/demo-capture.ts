// The demo's last step: a short capture of the underlay while the pods talk, showing that pod
// traffic between nodes crosses it only as WireGuard UDP (with `encryption: wireguard`).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { LabPlan } from '../integration/lab/config.ts';
import { plaintextLines, startCapture, wireguardLines } from '../integration/lab/encryption.ts';
import { labProbe } from './lab.ts';

export interface CaptureOutcome {
  packets: number;
  wireguard: number;
  /** packets whose outer addresses are pod addresses: plaintext pod traffic */
  plaintext: string[];
  sample: string[];
}

export async function captureUnderlay(plan: LabPlan, probes: string[]): Promise<CaptureOutcome> {
  const dir = join(plan.runDir, 'demo');
  mkdirSync(dir, { recursive: true });
  const cap = await startCapture(plan, join(dir, 'underlay.pcap'));
  const probed = await labProbe(plan.name, probes).then(
    () => undefined,
    (err: unknown) => err,
  );
  const got = await cap.stop();
  if (probed) throw probed;
  return summarize(plan, got.lines);
}

function summarize(plan: LabPlan, lines: string[]): CaptureOutcome {
  const got = { raw: Buffer.alloc(0), lines };
  const plaintext = plan.clusters.flatMap((c) =>
    plaintextLines(got, c.podCIDR.split('.').slice(0, 2).join('.') + '.'),
  );
  const wg = wireguardLines(got);
  return { packets: lines.length, wireguard: wg.length, plaintext, sample: wg.slice(0, 4) };
}

export function formatCapture(plan: LabPlan, c: CaptureOutcome): string {
  const out = [
    `$ tcpdump -i any --immediate-mode -nn   (in ${plan.underlay.netns}, while the pods talk)`,
    ...c.sample.map((l) => `  ${l}`),
    `=> ${c.packets} packets on the underlay; ${c.wireguard} WireGuard UDP (ports 51871/51872), ${c.plaintext.length} with pod addresses in plaintext.`,
  ];
  if (c.plaintext.length) out.push(`   e.g. ${c.plaintext[0]}`);
  return out.join('\n');
}
