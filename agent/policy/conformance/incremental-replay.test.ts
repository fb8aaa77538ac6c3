// The multi-step conformance cases replayed as changes to one live PolicyMesh (pod relabels,
// namespace relabels, policy updates and deletions), instead of a fresh load per step: verdicts
// must still match, and the deltas emitted must add up to each endpoint's current entries.
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import type { EndpointDelta } from '../engine.ts';
import { loadMesh, parsePolicyDoc } from '../load.ts';
import type { PolicyMesh } from '../mesh.ts';
import { reachability } from '../reachability.ts';
import { entryKey, prefixKey } from '../resolve.ts';
import { CILIUM_CASES } from './cilium-cases.ts';
import {
  DEFAULT_CLUSTER,
  expectedRows,
  fullPod,
  stepSources,
  type CaseStep,
  type ConformanceCase,
} from './model.ts';
import { UPSTREAM_CASES } from './upstream-cases.ts';

type Applied = Map<string, { entries: Set<string>; prefixes: Set<string> }>;

function applyDeltas(state: Applied, deltas: { cluster: string; delta: EndpointDelta }[]): void {
  for (const { delta: d } of deltas) {
    const a = state.get(d.endpoint) ?? { entries: new Set<string>(), prefixes: new Set<string>() };
    d.remove.forEach((e) => a.entries.delete(entryKey(e)));
    d.removePrefixes.forEach((p) => a.prefixes.delete(prefixKey(p)));
    d.add.forEach((e) => a.entries.add(entryKey(e)));
    d.addPrefixes.forEach((p) => a.prefixes.add(prefixKey(p)));
    state.set(d.endpoint, a);
  }
}

function applyStep(
  mesh: PolicyMesh,
  c: ConformanceCase,
  step: CaseStep,
  index: number,
): { cluster: string; delta: EndpointDelta }[] {
  const out: { cluster: string; delta: EndpointDelta }[] = [];
  // policies carry planned-IP placeholders: take the rendered objects of this step's sources
  const rendered = stepSources(c, index).flatMap((s) => loadDocs(s.cluster, s.text));
  for (const o of step.apply ?? []) {
    const cluster = (o as { cluster?: string }).cluster ?? DEFAULT_CLUSTER;
    const meta = o.metadata as { name: string; namespace?: string };
    if (o.kind === 'Namespace') {
      out.push(
        ...mesh.upsertNamespace(
          cluster,
          meta.name,
          (meta as { labels?: Record<string, string> }).labels ?? {},
        ),
      );
      continue;
    }
    const doc = rendered.find(
      (d) =>
        d.cluster === cluster &&
        d.obj.kind === o.kind &&
        (d.obj.metadata as { name: string }).name === meta.name &&
        (d.obj.metadata as { namespace?: string }).namespace === meta.namespace,
    )!;
    for (const p of parsePolicyDoc(doc)) out.push(...mesh.upsertPolicy(cluster, p));
  }
  for (const key of step.delete ?? []) out.push(...mesh.deletePolicy(DEFAULT_CLUSTER, key));
  for (const pl of step.podLabels ?? []) {
    const pod = mesh.pod(fullPod(pl.pod))!;
    out.push(...mesh.upsertPod({ ...pod.spec, labels: pl.labels }));
  }
  return out;
}

function loadDocs(cluster: string, text: string) {
  return text.split(/^---$/m).map((t, i) => ({
    cluster,
    where: `doc ${i + 1}`,
    obj: parseYaml(t) as Record<string, unknown>,
  }));
}

const multiStep = [...UPSTREAM_CASES, ...CILIUM_CASES].filter((c) => c.steps.length > 1);

test('there are multi-step cases to replay', (t) => {
  t.true(multiStep.length >= 10);
});

for (const c of multiStep) {
  test(`incremental replay: ${c.name}`, (t) => {
    const mesh = loadMesh(stepSources(c, 0));
    const applied: Applied = new Map();
    for (const name of mesh.clusterNames()) {
      const e = mesh.engine(name);
      for (const ep of e.endpointNames()) {
        const p = e.policyOf(ep);
        applied.set(ep, {
          entries: new Set(p.entries.map(entryKey)),
          prefixes: new Set(p.prefixes.map(prefixKey)),
        });
      }
    }
    c.steps.forEach((step, i) => {
      if (i > 0) applyDeltas(applied, applyStep(mesh, c, step, i));
      for (const check of step.probes) {
        const rows = reachability(mesh, [{ port: check.port, protocol: check.protocol }]);
        const got = rows.map((r) => ({ from: r.from, to: r.to, allowed: r.allowed }));
        t.deepEqual(got, expectedRows(c, check), `step ${i + 1} ${check.port}/${check.protocol}`);
      }
      for (const name of mesh.clusterNames()) {
        const e = mesh.engine(name);
        for (const ep of e.endpointNames()) {
          const p = e.policyOf(ep);
          t.deepEqual(
            [...(applied.get(ep)?.entries ?? [])].sort(),
            p.entries.map(entryKey).sort(),
            `deltas for ${ep} after step ${i + 1}`,
          );
          t.deepEqual(
            [...(applied.get(ep)?.prefixes ?? [])].sort(),
            p.prefixes.map(prefixKey).sort(),
          );
        }
      }
    });
  });
}
