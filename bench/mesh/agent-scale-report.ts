// The figures of bench/mesh/agent-scale.ts, printed as the other benchmarks do.
import { heapMb, median, type MemorySample } from './agent-scale-support.ts';

export interface ResyncRun {
  backToFirstChangeMs: number;
  backToDoneMs: number;
  firstToDoneMs: number;
  backToConnectedLogMs: number | undefined;
  libraryMs: number;
  rangeReadMs: number;
  sinkDeletes: number;
  sinkUpserts: number;
  exact: boolean;
  unchangedMissingSeen: number;
  polls: number;
}

type Mem = MemorySample;

export function report(r: {
  endpoints: number;
  resyncKeys: number;
  churn: number;
  syncS: number;
  librarySyncS: number;
  loadS: number;
  shrinkS: number;
  mapRows: number;
  rowsTotal: number;
  memBefore: Mem;
  memAfter: Mem;
  memShrunk: Mem;
  relists: number[];
  gcHeap: { before: number; after: number; shrunk: number; end: number };
  runs: ResyncRun[];
}): void {
  const g = r.gcHeap;
  const per = (a: number, b: number, n: number) => Math.round((a - b) / n);
  const med = (f: (x: ResyncRun) => number | undefined) =>
    median(r.runs.map(f).filter((x): x is number => x !== undefined));
  const ms = (x: number) => `${Math.round(x)} ms`;
  console.log(
    `agent at scale: ${r.endpoints} remote endpoints (1000 identities, ${Math.ceil(r.endpoints / 250)} nodes)`,
  );
  console.log(
    `  c2 mesh etcd loaded in                    ${r.loadS.toFixed(1)} s (${Math.round(r.endpoints / r.loadS)}/s, txns of 100, 8 in flight)`,
  );
  console.log(
    `  bundle added -> all in the BPF ipcache    ${r.syncS.toFixed(1)} s (${Math.round(r.endpoints / r.syncS)}/s); remote rows in the map ${r.mapRows}, agent ipcache rows ${r.rowsTotal} (map max 262144)`,
  );
  console.log(
    `  library alone, same listing, counting sink ${r.librarySyncS.toFixed(1)} s (agent / library ${(r.syncS / r.librarySyncS).toFixed(2)})`,
  );
  console.log(
    `  agent RSS   no remote ${r.memBefore.rssMb.toFixed(0)} MB -> ${r.endpoints} endpoints ${r.memAfter.rssMb.toFixed(0)} MB: ${per(r.memAfter.rssMb * 2 ** 20, r.memBefore.rssMb * 2 ** 20, r.endpoints)} B/endpoint`,
  );
  console.log(
    `  agent heap  no remote ${heapMb(r.memBefore)} MB -> ${r.endpoints} endpoints ${heapMb(r.memAfter)} MB: ${per(r.memAfter.heapUsedMb * 2 ** 20, r.memBefore.heapUsedMb * 2 ** 20, r.endpoints)} B/endpoint (median of samples, no forced GC)`,
  );
  console.log(
    `  agent heap after a full GC  no remote ${g.before.toFixed(1)} MB -> ${r.endpoints} endpoints ${g.after.toFixed(1)} MB: ${per(g.after * 2 ** 20, g.before * 2 ** 20, r.endpoints)} B/endpoint`,
  );
  console.log(
    `  heap after a full GC with ${r.resyncKeys} endpoints: after the live shrink ${g.shrunk.toFixed(1)} MB (${per(g.shrunk * 2 ** 20, g.before * 2 ** 20, r.resyncKeys)} B/endpoint), after the resyncs ${g.end.toFixed(1)} MB`,
  );
  console.log(
    `  after live shrink to ${r.resyncKeys} (${r.shrinkS.toFixed(1)} s for ${r.endpoints - r.resyncKeys} deletes): RSS ${r.memShrunk.rssMb.toFixed(0)} MB, heap ${heapMb(r.memShrunk)} MB`,
  );
  console.log(
    `  resync, ${r.resyncKeys} keys, ${r.churn} deleted + ${r.churn} added during the outage, ${r.runs.length} repeats (medians):`,
  );
  console.log(
    `    etcd back -> first change in BPF map   ${ms(med((x) => x.backToFirstChangeMs))} (reconnect backoff, connect, list)`,
  );
  console.log(
    `    etcd back -> agent logs "connected"     ${ms(med((x) => x.backToConnectedLogMs))}`,
  );
  console.log(`    first -> last change in BPF map         ${ms(med((x) => x.firstToDoneMs))}`);
  console.log(`    etcd back -> map holds the change       ${ms(med((x) => x.backToDoneMs))}`);
  console.log(`    library alone, same outage (in-process) ${ms(med((x) => x.libraryMs))}`);
  console.log(
    `    raw etcd range read of the ${r.resyncKeys} keys ${ms(med((x) => x.rangeReadMs))}`,
  );
  console.log(
    `    relist without backoff (bundle re-issued) ${ms(median(r.relists))} (runs: ${r.relists.map(Math.round).join(', ')} ms; 0 sink calls)`,
  );
  console.log(
    `    ratio agent / library (per repeat)     ${median(r.runs.map((x) => x.backToDoneMs / x.libraryMs)).toFixed(2)}`,
  );
  for (const [i, x] of r.runs.entries())
    console.log(
      `    repeat ${i + 1}: sink deletes ${x.sinkDeletes}, upserts ${x.sinkUpserts}, map diff exact ${x.exact}, unchanged rows seen missing ${x.unchangedMissingSeen} over ${x.polls} polls of 1000`,
    );
}
