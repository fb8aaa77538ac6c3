// Cross-node pod-to-pod TCP throughput in the lab (2 nodes, real agents, native routing over the
// underlay bridge): iperf3 from a pod on node 1 to a pod on node 2, interleaved repeats of
//   off    no programs on the two pod veths
//   empty  programs attached and enforcing both ends (client egress, server ingress), with only
//          the entries the flow needs and the lab's identities in the ipcache
//   full   the same plus 50,000 ipcache entries on every node and 10,000 policy entries on each
//          of the two endpoints
// Figures are medians; ratios empty/off (target >= 0.95) and full/empty (target >= 0.97).
// Run as root: node --import tsx bench/datapath/lab-throughput.ts [seconds=3] [repeats=5]
import {
  clearIpcache,
  fillIpcache,
  interleavedRounds,
  iperf,
  median,
  ratioLine,
  policyWithFillers,
  setPrograms,
  withBenchLab,
  type BenchLab,
} from './lab-bench.ts';

const seconds = Number(process.argv[2] ?? 3);
const repeats = Number(process.argv[3] ?? 5);
const IPERF_PORT = 5201;
const IPCACHE_ENTRIES = 50_000;
const POLICY_ENTRIES = 10_000;

type Condition = 'off' | 'empty' | 'full';

function configure(b: BenchLab, c: Condition, fillers: { keys: string[] }): void {
  const { mesh, client, server } = b;
  const size = c === 'full' ? POLICY_ENTRIES : 1;
  mesh.applyPolicy(
    client,
    policyWithFillers('egress', mesh.identityOf(server), [IPERF_PORT], size),
  );
  mesh.applyPolicy(
    server,
    policyWithFillers('ingress', mesh.identityOf(client), [IPERF_PORT], size),
  );
  if (c === 'full' && fillers.keys.length === 0) fillers.keys = fillIpcache(b, IPCACHE_ENTRIES);
  if (c !== 'full' && fillers.keys.length) {
    clearIpcache(b, fillers.keys);
    fillers.keys = [];
  }
  setPrograms(b, c !== 'off');
}

/** Entry counts read back from the server node's maps (proof the "full" condition was full). */
function loadedSizes(b: BenchLab): string {
  const maps = b.mesh.node(b.server.node).maps;
  const rows = (pod: BenchLab['client']) =>
    b.mesh.node(pod.node).maps.policy.read(b.mesh.endpointIdOf(pod)).length;
  return (
    `${[...maps.ipcache.entries()].length} ipcache entries on ${b.server.node}, policy entries ` +
    `client ${rows(b.client)} / server ${rows(b.server)}`
  );
}

await withBenchLab('bthr', async (b) => {
  let loaded = '';
  const fillers = { keys: [] as string[] };
  const conditions: Condition[] = ['off', 'empty', 'full'];
  const results = await interleavedRounds(conditions, repeats, (seconds + 20) * 1000, (c) => {
    configure(b, c, fillers);
    if (c === 'full') loaded = loadedSizes(b);
    return iperf(b, seconds, IPERF_PORT);
  });
  const [off, empty, full] = [median(results.off), median(results.empty), median(results.full)];
  console.log(
    `cross-node pod-to-pod TCP (iperf3, ${seconds}s x ${results.off.length} interleaved, medians)`,
  );
  console.log(`  no programs                         ${off.toFixed(2)} Gbit/s`);
  console.log(`  programs, enforcing, minimal maps   ${empty.toFixed(2)} Gbit/s`);
  console.log(
    `  programs, ${IPCACHE_ENTRIES} ipcache + ${POLICY_ENTRIES} policy entries/endpoint   ${full.toFixed(2)} Gbit/s`,
  );
  console.log(ratioLine('ratio programs/none', results.empty, results.off, 0.95));
  console.log(ratioLine('ratio full/empty maps', results.full, results.empty, 0.97));
  console.log(`  full maps as read back from the kernel: ${loaded}`);
  console.log(
    `  raw Gbit/s: ${JSON.stringify(results, (_, v) => (typeof v === 'number' ? +v.toFixed(2) : v))}`,
  );
});
