// New TCP connections per second from a pod on node 1 to a pod on node 2 whose ingress allows
// the client among 10,000 rules, interleaved repeats of three enforcements:
//   ebpf   the pod programs on both veths; 10,000 entries in the server's ingress policy map
//   chain  no programs; in node 2's namespace, iptables as iptables NetworkPolicy
//          implementations (kube-router, Calico in iptables mode) build it: FORWARD accepts
//          ESTABLISHED,RELATED first (only new connections walk the rules), then jumps traffic
//          to the pod's veth into a per-pod chain of one rule per allowed peer/port, the
//          client's rule LAST, then DROP
//   ipset  the same, with the 10,000 peer/port pairs in one hash:ip,port set matched by one rule
// The FORWARD conntrack rule also goes on the client's node (such implementations install it on
// every node), as the eBPF datapath runs on every pod's veth. References: 'none' (no enforcement
// anywhere) and 'ebpf-server' (programs on the server's veth only).
// The client is bench/datapath/tools/connrate.c (connect + abortive close, 8 in flight), bounded
// in time and count. Counters of the rules that accepted are printed to show they were walked.
// Run as root: node --import tsx bench/datapath/conn-rate.ts [seconds=3] [repeats=5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsPath } from '../../integration/lab/netns.ts';
import {
  inNetns,
  interleavedRounds,
  median,
  ratioLine,
  policyWithFillers,
  setPrograms,
  withBenchLab,
  type BenchLab,
} from './lab-bench.ts';

const seconds = Number(process.argv[2] ?? 3);
const repeats = Number(process.argv[3] ?? 5);
const RULES = 10_000;
const PORT = 80;
const MAX_CONNECTIONS = 500_000;
const CONCURRENCY = 8;
const CHAIN = 'ISTH-POD-SERVER';

const CONDITIONS = ['none', 'ebpf', 'ebpf-server', 'chain', 'ipset'] as const;
type Condition = (typeof CONDITIONS)[number];
/** which conditions to run (argv[4], comma-separated); 'none' and 'ebpf-server' are references */
const chosen = (process.argv[4] ?? 'none,ebpf,chain,ipset').split(',') as Condition[];
for (const c of chosen)
  if (!CONDITIONS.includes(c))
    throw new Error(`unknown condition ${c}: use ${CONDITIONS.join(',')}`);

const fillerIp = (i: number): string => `10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

function buildClient(dir: string): string {
  const src = join(dirname(fileURLToPath(import.meta.url)), 'tools/connrate.c');
  const out = join(dir, 'connrate');
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', out, src], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cannot build ${src}: ${cc.stderr}`);
  return out;
}

/** iptables-restore input for the server pod: the linear per-pod chain or the one-set rule. */
function ruleset(b: BenchLab, c: 'chain' | 'ipset', set: string): string {
  const veth = hostIfname(b);
  const lines = [
    '*filter',
    `:${CHAIN} - [0:0]`,
    '-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    `-A FORWARD -o ${veth} -j ${CHAIN}`,
  ];
  if (c === 'chain') {
    for (let i = 0; i < RULES - 1; i++)
      lines.push(`-A ${CHAIN} -s ${fillerIp(i)}/32 -p tcp -m tcp --dport ${PORT} -j ACCEPT`);
    lines.push(`-A ${CHAIN} -s ${b.client.ip}/32 -p tcp -m tcp --dport ${PORT} -j ACCEPT`);
  } else {
    lines.push(`-A ${CHAIN} -m set --match-set ${set} src,dst -j ACCEPT`);
  }
  lines.push(`-A ${CHAIN} -j DROP`, 'COMMIT', '');
  return lines.join('\n');
}

let vethName = '';
function hostIfname(b: BenchLab): string {
  if (vethName) return vethName;
  const ifindex = b.mesh.hostIfindexOf(b.server);
  const node = b.lab.node(b.server.node);
  const r = spawnSync('nsenter', [`--net=${netnsPath(node.netns)}`, 'ip', '-j', 'link'], {
    encoding: 'utf8',
  });
  const link = (JSON.parse(r.stdout) as Array<{ ifindex: number; ifname: string }>).find(
    (l) => l.ifindex === ifindex,
  );
  if (!link) throw new Error(`no link ${ifindex} on ${node.name}`);
  return (vethName = link.ifname);
}

async function clearIptables(node: string, set: string): Promise<void> {
  await inNetns(node, ['iptables-restore'], 30_000, '*filter\nCOMMIT\n');
  await inNetns(node, ['iptables', '-X'], 10_000);
  await inNetns(node, ['ipset', 'destroy', set], 10_000).catch(() => undefined);
}

/** What such an implementation installs on EVERY node, also where no pod is selected: the
 * conntrack bypass in FORWARD (the client's node; the client pod has no policy, so no chain). */
const EVERY_NODE =
  '*filter\n-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n';

async function configure(
  b: BenchLab,
  c: Condition,
  node: string,
  clientNode: string,
  set: string,
): Promise<void> {
  await clearIptables(node, set);
  await clearIptables(clientNode, set);
  setPrograms(b, false);
  if (c === 'ebpf') setPrograms(b, true);
  if (c === 'ebpf-server') setPrograms(b, true, [b.server]);
  if (c === 'ipset') {
    const adds = Array.from(
      { length: RULES - 1 },
      (_, i) => `add ${set} ${fillerIp(i)},tcp:${PORT}`,
    );
    adds.push(`add ${set} ${b.client.ip},tcp:${PORT}`);
    const input = [`create ${set} hash:ip,port maxelem 65536`, ...adds, ''].join('\n');
    await inNetns(node, ['ipset', 'restore'], 30_000, input);
  }
  if (c === 'chain' || c === 'ipset') {
    await inNetns(node, ['iptables-restore'], 60_000, ruleset(b, c, set));
    await inNetns(clientNode, ['iptables-restore'], 10_000, EVERY_NODE);
  }
}

/** Packet counters of the chain's rules, in order (iptables -v -x). */
async function chainCounters(node: string): Promise<number[]> {
  const out = await inNetns(node, ['iptables', '-L', CHAIN, '-v', '-x', '-n'], 30_000);
  return out
    .split('\n')
    .slice(2)
    .filter((l) => l.trim())
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

async function connRate(b: BenchLab, client: string) {
  const out = await inNetns(
    b.client.netnsPath,
    [
      client,
      b.server.ip,
      String(PORT),
      String(seconds),
      String(MAX_CONNECTIONS),
      String(CONCURRENCY),
    ],
    (seconds + 15) * 1000,
  );
  return JSON.parse(out) as { connections: number; failures: number; rate: number };
}

const dir = mkdtempSync(join(tmpdir(), 'isthmus-connrate-'));
try {
  const client = buildClient(dir);
  await withBenchLab('bcon', async (b) => {
    const node = netnsPath(b.lab.node(b.server.node).netns);
    const clientNode = netnsPath(b.lab.node(b.client.node).netns);
    const set = `isth-${b.lab.plan.name}`;
    b.mesh.applyPolicy(
      b.server,
      policyWithFillers('ingress', b.mesh.identityOf(b.client), [PORT], RULES),
    );
    const entries = b.mesh.node(b.server.node).maps.policy.read(b.mesh.endpointIdOf(b.server));
    const evidence: string[] = [];
    const results = await interleavedRounds(
      chosen,
      repeats,
      (seconds + 40) * 1000,
      async (c, r) => {
        await configure(b, c, node, clientNode, set);
        const run = await connRate(b, client);
        if (run.failures > run.connections / 100)
          throw new Error(`${c}: ${run.failures} failed connections of ${run.connections}`);
        if ((c === 'chain' || c === 'ipset') && r === 0) {
          const counts = await chainCounters(node);
          evidence.push(
            `${c}: ${counts.length} rules; the accepting rule (#${counts.length - 1}) counted ` +
              `${counts.at(-2)} new connections for ${run.connections} made; rules before it: ` +
              `${counts.slice(0, -2).reduce((s, x) => s + x, 0)} hits`,
          );
        }
        return run.rate;
      },
    );
    await clearIptables(node, set);
    await clearIptables(clientNode, set);
    const m = (c: Condition): number => median(results[c] ?? []);
    const label: Record<Condition, string> = {
      none: 'no enforcement at all (reference)',
      ebpf: 'eBPF, programs on both pod veths',
      'ebpf-server': 'eBPF, programs on the server veth only',
      chain: 'iptables per-pod chain (linear)',
      ipset: 'iptables + ipset hash:ip,port',
    };
    console.log(
      `new TCP connections/s, cross-node, ${RULES} rules for the server pod ` +
        `(${seconds}s x ${results[chosen[0]!].length} interleaved, medians; ${entries.length} policy entries)`,
    );
    for (const c of chosen) console.log(`  ${label[c].padEnd(42)} ${m(c).toFixed(0)}/s`);
    if (results.ebpf && results.chain)
      console.log(ratioLine('ratio eBPF/chain', results.ebpf, results.chain, 2));
    if (results.ebpf && results.ipset)
      console.log(ratioLine('ratio eBPF/ipset', results.ebpf, results.ipset, 1));
    for (const line of evidence) console.log(`  ${line}`);
    console.log(
      `  raw rates: ${JSON.stringify(results, (_, v) => (typeof v === 'number' ? Math.round(v) : v))}`,
    );
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
