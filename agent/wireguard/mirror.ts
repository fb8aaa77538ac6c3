// During a rotation's per-peer switch, packets routed through the old device for a peer that has
// not been seen on the new key yet are also mirrored into the new device (tc u32 + mirred on
// the old device's egress; u32, not flower: these kernels lack cls_flower). The peer accepts exactly one of the two copies: the old key's before
// it applies the flip, the new key's after (cryptokey routing binds a source prefix to one key),
// so the moment it flips loses nothing, whichever side notices first.
import { mustRun, runCommand } from '../routing/command.ts';

const MIRROR_PREF = 10;

function tcIn(netns: string | undefined, args: string[]): string[] {
  if (!netns) return ['tc', ...args];
  const m = /^\/run\/netns\/([^/]+)$/.exec(netns);
  return m?.[1] ? ['tc', '-n', m[1], ...args] : ['nsenter', `--net=${netns}`, '--', 'tc', ...args];
}

interface MirrorFilter {
  /** u32 handle, e.g. `800::801` */
  handle: string;
  dst: string;
}

/** A u32 match on the IPv4 destination (offset 16) back into a prefix. */
function prefixOf(m: { value?: string; mask?: string; off?: number }): string | undefined {
  if (m.off !== 16 || m.value === undefined || m.mask === undefined) return undefined;
  const v = parseInt(m.value, 16) >>> 0;
  const bits = (parseInt(m.mask, 16) >>> 0).toString(2).replace(/0+$/, '').length;
  return `${[24, 16, 8, 0].map((s) => (v >>> s) & 255).join('.')}/${bits}`;
}

/** The mirror filters on `from`'s egress (empty when the device or its clsact is gone). */
export async function mirroredPrefixes(
  netns: string | undefined,
  from: string,
): Promise<MirrorFilter[]> {
  const r = await runCommand(tcIn(netns, ['-j', 'filter', 'show', 'dev', from, 'egress']));
  if (r.code !== 0 || !r.stdout.trim()) return [];
  type Match = { value?: string; mask?: string; off?: number };
  type Row = { pref?: number; kind?: string; options?: { fh?: string; match?: Match } };
  const out: MirrorFilter[] = [];
  for (const row of JSON.parse(r.stdout) as Row[]) {
    const dst = row.options?.match && prefixOf(row.options.match);
    const handle = row.options?.fh;
    if (row.pref === MIRROR_PREF && row.kind === 'u32' && dst && handle) out.push({ handle, dst });
  }
  return out;
}

/** Converges the mirror: IPv4 packets to exactly `prefixes` leaving `from` are copied into
 * `to` as well. Adds before it removes, so a prefix kept never loses its copy. */
export async function setMirror(
  netns: string | undefined,
  from: string,
  to: string,
  prefixes: string[],
): Promise<void> {
  const have = await mirroredPrefixes(netns, from);
  const want = new Set(prefixes);
  const haveDst = new Set(have.map((f) => f.dst));
  const add = prefixes.filter((p) => !haveDst.has(p));
  if (add.length) {
    await runCommand(tcIn(netns, ['qdisc', 'add', 'dev', from, 'clsact'])); // exists: fine
    for (const dst of add)
      await mustRun(
        tcIn(netns, [
          ...['filter', 'add', 'dev', from, 'egress', 'protocol', 'ip'],
          ...['pref', String(MIRROR_PREF), 'u32', 'match', 'ip', 'dst', dst],
          ...['action', 'mirred', 'egress', 'mirror', 'dev', to],
        ]),
      );
  }
  for (const f of have.filter((f) => !want.has(f.dst)))
    await mustRun(
      tcIn(netns, [
        ...['filter', 'del', 'dev', from, 'egress', 'protocol', 'ip'],
        ...['pref', String(MIRROR_PREF), 'handle', f.handle, 'u32'],
      ]),
    );
}
