// Service load-balancing benchmarks on a 2-node lab (kernel datapath, client pod on node 1,
// server pod on node 2), ratios within one run, medians of interleaved repeats:
//   1. new TCP connections per second to a ClusterIP (translated at the client's veth) vs
//      straight to the backend pod IP (target >= 0.9);
//   2. with 10,000 services x 10 backends loaded in the client node's LB maps vs 1 service:
//      connection rate and TCP throughput through the ClusterIP (target >= 0.95).
// The client is bench/datapath/tools/connrate.c (bounded in time and count); throughput is iperf3.
// Run as root: node --import tsx bench/services/lb-bench.ts [seconds=3] [repeats=5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LbMaps } from '../../agent/datapath/lb-maps.ts';
import { LbReconciler } from '../../agent/services/lb-reconciler.ts';
import { inNetns, median, ratioLine, withBenchLab, type BenchLab } from '../datapath/lab-bench.ts';

const seconds = Number(process.argv[2] ?? 3);
const repeats = Number(process.argv[3] ?? 5);
const VIP = '10.96.0.10';
const IPERF_PORT = 5201;
const FILLER_SERVICES = 10_000;
const FILLER_BACKENDS = 10;
const MAX_CONNECTIONS = 500_000;

function buildClient(dir: string): string {
  const src = join(dirname(fileURLToPath(import.meta.url)), '../datapath/tools/connrate.c');
  const out = join(dir, 'connrate');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', out, src], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cannot build ${src}: ${cc.stderr}`);
  return out;
}

async function connRate(b: BenchLab, client: string, ip: string): Promise<number> {
  const out = await inNetns(
    b.client.netnsPath,
    [client, ip, '80', String(seconds), String(MAX_CONNECTIONS), '8'],
    (seconds + 20) * 1000,
  );
  const r = JSON.parse(out) as { rate: number; failures: number };
  if (r.failures > 0) console.error(`  (${r.failures} connections to ${ip} failed)`);
  return r.rate;
}

/** Filler frontends (10.97.0.0/16 VIPs) with filler backends (10.80.0.0/12, outside the lab),
 * written in batches straight into the maps: ids above the reconciler's own. */
function fillerEntries() {
  const services: Array<
    [
      { addr: string; port: number; protocol: number },
      { serviceId: number; count: number; flags: number },
    ]
  > = [];
  const slots: Array<[{ serviceId: number; slot: number }, number]> = [];
  const backends: Array<[number, { addr: string; port: number; flags: number }]> = [];
  for (let s = 0; s < FILLER_SERVICES; s++) {
    const serviceId = 100_000 + s;
    services.push([
      { addr: `10.97.${s >> 8}.${s & 255}`, port: 80, protocol: 6 },
      { serviceId, count: FILLER_BACKENDS, flags: 0 },
    ]);
    for (let k = 0; k < FILLER_BACKENDS; k++) {
      const id = 1_000_000 + s * FILLER_BACKENDS + k;
      const n = s * FILLER_BACKENDS + k;
      backends.push([
        id,
        { addr: `10.${80 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`, port: 8080, flags: 0 },
      ]);
      slots.push([{ serviceId, slot: k }, id]);
    }
  }
  return { services, slots, backends };
}

function load(maps: LbMaps, f: ReturnType<typeof fillerEntries>): void {
  maps.backends.setMany(f.backends);
  maps.slots.setMany(f.slots);
  maps.services.setMany(f.services);
}

function unload(maps: LbMaps, f: ReturnType<typeof fillerEntries>): void {
  maps.services.deleteMany(f.services.map(([k]) => k));
  maps.slots.deleteMany(f.slots.map(([k]) => k));
  maps.backends.deleteMany(f.backends.map(([k]) => k));
}

await withBenchLab('bsvc', async (b) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-bench-svc-'));
  try {
    const client = buildClient(dir);
    const maps = b.mesh.node(b.client.node).maps.lb;
    new LbReconciler(maps).reconcile([
      {
        service: 'bench/server/http',
        addr: VIP,
        port: 80,
        protocol: 'TCP',
        backends: [{ addr: b.server.ip, port: 80 }],
      },
      {
        service: 'bench/server/iperf',
        addr: VIP,
        port: IPERF_PORT,
        protocol: 'TCP',
        backends: [{ addr: b.server.ip, port: IPERF_PORT }],
      },
    ]);
    const fillers = fillerEntries();
    const r = {
      direct: [] as number[],
      vip: [] as number[],
      loadedRate: [] as number[],
      oneRate: [] as number[],
      loadedTput: [] as number[],
      oneTput: [] as number[],
    };
    console.log(`services benchmark: ${seconds} s per measurement, ${repeats} interleaved repeats`);
    let loadMs = 0;
    const measure = {
      direct: async () => void r.direct.push(await connRate(b, client, b.server.ip)),
      one: async () => {
        r.vip.push(await connRate(b, client, VIP));
        r.oneRate.push(r.vip.at(-1)!);
        r.oneTput.push(await iperfVip(b));
      },
      loaded: async () => {
        const started = Date.now();
        load(maps, fillers);
        loadMs = Date.now() - started;
        try {
          r.loadedRate.push(await connRate(b, client, VIP));
          r.loadedTput.push(await iperfVip(b));
        } finally {
          unload(maps, fillers);
        }
      },
    };
    for (let i = 0; i < repeats; i++) {
      // the order alternates so that drift in the machine's load hits every condition alike
      const order =
        i % 2 === 0
          ? (['direct', 'one', 'loaded'] as const)
          : (['loaded', 'one', 'direct'] as const);
      for (const c of order) await measure[c]();
      console.log(
        `  repeat ${i + 1}: direct ${r.direct.at(-1)!.toFixed(0)}/s, ClusterIP ${r.vip.at(-1)!.toFixed(0)}/s, ` +
          `loaded ${r.loadedRate.at(-1)!.toFixed(0)}/s; throughput 1 svc ${r.oneTput.at(-1)!.toFixed(2)} Gbit/s, ` +
          `loaded ${r.loadedTput.at(-1)!.toFixed(2)} Gbit/s (fillers written in ${loadMs} ms)`,
      );
    }
    console.log(
      `medians: direct ${median(r.direct).toFixed(0)}/s, ClusterIP ${median(r.vip).toFixed(0)}/s, loaded ${median(r.loadedRate).toFixed(0)}/s`,
    );
    console.log(ratioLine('ClusterIP / direct conn/s', r.vip, r.direct, 0.9));
    console.log(ratioLine('10k svc / 1 svc conn/s', r.loadedRate, r.oneRate, 0.95));
    console.log(ratioLine('10k svc / 1 svc Gbit/s', r.loadedTput, r.oneTput, 0.95));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** iperf3 through the ClusterIP (the server pod runs iperf3 on its own address). */
async function iperfVip(b: BenchLab): Promise<number> {
  const limit = (seconds + 15) * 1000;
  const srv = inNetns(b.server.netnsPath, ['iperf3', '-s', '-1', '-p', String(IPERF_PORT)], limit);
  await new Promise((res) => setTimeout(res, 300));
  const out = await inNetns(
    b.client.netnsPath,
    ['iperf3', '-c', VIP, '-p', String(IPERF_PORT), '-t', String(seconds), '-J'],
    limit,
  );
  await srv;
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}
