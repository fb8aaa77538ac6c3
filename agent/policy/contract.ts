// Checks an EndpointPolicy against the invariants entry.ts promises the datapath. The engine's
// tests assert every output passes; the agent may assert it before writing maps.
import { PREFIX_CLASS_BASE, Protocol, type EndpointPolicy } from './entry.ts';
import { parseCidr } from './ports.ts';

export function contractViolations(p: EndpointPolicy): string[] {
  const out: string[] = [];
  const classes = new Set(p.prefixes.map((x) => `${x.direction}|${x.classId}`));
  const seen = new Map<string, boolean>();
  for (const e of p.entries) {
    const where = `${e.direction} peer ${e.peer} proto ${e.protocol} ${e.port}/${e.portPrefixLen}`;
    if (!Number.isInteger(e.portPrefixLen) || e.portPrefixLen < 0 || e.portPrefixLen > 16)
      out.push(`${where}: prefix length out of range`);
    if (e.protocol === Protocol.ANY && (e.port !== 0 || e.portPrefixLen !== 0))
      out.push(`${where}: protocol ANY with a port`);
    const mask = e.portPrefixLen === 0 ? 0 : (0xffff << (16 - e.portPrefixLen)) & 0xffff;
    if ((e.port & ~mask & 0xffff) !== 0) out.push(`${where}: port has bits beyond the prefix`);
    if (e.peer >= PREFIX_CLASS_BASE && !classes.has(`${e.direction}|${e.peer}`))
      out.push(`${where}: prefix class without a prefix`);
    const key = `${e.direction}|${e.peer}|${e.protocol}|${e.port}/${e.portPrefixLen}`;
    if (seen.has(key)) out.push(`${where}: duplicate key`);
    seen.set(key, e.deny);
  }
  for (const x of p.prefixes) {
    const c = parseCidr(x.cidr);
    if (!c || c.cidr !== x.cidr) out.push(`${x.direction} ${x.cidr}: not a canonical CIDR`);
    if (x.classId < PREFIX_CLASS_BASE)
      out.push(`${x.direction} ${x.cidr}: class id ${x.classId} below PREFIX_CLASS_BASE`);
  }
  const prefixKeys = p.prefixes.map((x) => `${x.direction}|${x.cidr}`);
  if (new Set(prefixKeys).size !== prefixKeys.length)
    out.push('a prefix appears twice in one direction');
  return out;
}
