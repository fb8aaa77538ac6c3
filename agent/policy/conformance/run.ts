// Runs a conformance case step by step through exactly what `isthmus policy reachability` runs:
// YAML sources -> loadMesh -> reachability (engine entries through the datapath lookup model).
import { contractViolations } from '../contract.ts';
import { loadMesh } from '../load.ts';
import { reachability, type ProbeRow } from '../reachability.ts';
import { expectedRows, stepSources, type ConformanceCase } from './model.ts';

export interface Mismatch {
  step: number;
  probe: string;
  from: string;
  to: string;
  expected: boolean;
  actual: boolean;
  reason: string;
}

/** `ips`: actual pod IPs (e.g. the lab's); default the planned ones. */
export function runCase(
  c: ConformanceCase,
  ips?: ReadonlyMap<string, string>,
): { mismatches: Mismatch[]; checked: number } {
  const mismatches: Mismatch[] = [];
  let checked = 0;
  c.steps.forEach((step, i) => {
    const mesh = loadMesh(stepSources(c, i, ips));
    // what would be written to the kernel must satisfy entry.ts
    for (const cluster of mesh.clusterNames()) {
      const engine = mesh.engine(cluster);
      for (const ep of engine.endpointNames()) {
        for (const v of contractViolations(engine.policyOf(ep))) {
          mismatches.push({
            step: i + 1,
            probe: 'contract',
            from: ep,
            to: '',
            expected: true,
            actual: false,
            reason: v,
          });
        }
      }
    }
    for (const check of step.probes) {
      const rows = reachability(mesh, [{ port: check.port, protocol: check.protocol }]);
      const byPair = new Map<string, ProbeRow>(rows.map((r) => [`${r.from} ${r.to}`, r]));
      for (const want of expectedRows(c, check)) {
        const got = byPair.get(`${want.from} ${want.to}`);
        checked++;
        if (!got || got.allowed !== want.allowed) {
          mismatches.push({
            step: i + 1,
            probe: `${check.port}/${check.protocol}`,
            from: want.from,
            to: want.to,
            expected: want.allowed,
            actual: got?.allowed ?? false,
            reason: got?.reason ?? 'row missing',
          });
        }
      }
      if (rows.length !== expectedRows(c, check).length) {
        mismatches.push({
          step: i + 1,
          probe: `${check.port}/${check.protocol}`,
          from: '*',
          to: '*',
          expected: true,
          actual: false,
          reason: `got ${rows.length} rows`,
        });
      }
    }
  });
  return { mismatches, checked };
}
