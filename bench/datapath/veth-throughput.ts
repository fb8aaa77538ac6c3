// Pod-to-pod TCP throughput on ONE node (two pod namespaces through the node namespace), with the
// pod programs attached and enforcing vs detached; medians of interleaved iperf3 runs. The
// cross-node figure needs the lab (integration/lab) and is measured there.
// Run as root: node --import tsx bench/datapath/veth-throughput.ts [seconds=3] [repeats=3]
import { spawn } from 'node:child_process';
import { Protocol } from '../../agent/policy/entry.ts';
import { createFixture, endpointIdOf, identityOf } from '../../agent/datapath/test/fixture.ts';
import type { Pod } from '../../agent/datapath/test/topology.ts';

const seconds = Number(process.argv[2] ?? 3);
const repeats = Number(process.argv[3] ?? 3);

function run(netnsPath: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn('nsenter', [`--net=${netnsPath}`, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${args.join(' ')} exited ${code}`));
    });
  });
}

async function iperf(client: Pod, server: Pod): Promise<number> {
  const srv = run(server.netnsPath, ['iperf3', '-s', '-1', '-p', '5201'], (seconds + 10) * 1000);
  await new Promise((r) => setTimeout(r, 300));
  const out = await run(
    client.netnsPath,
    ['iperf3', '-c', server.ip, '-p', '5201', '-t', String(seconds), '-J'],
    (seconds + 10) * 1000,
  );
  await srv;
  const report = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
  return report.end.sum_received.bits_per_second / 1e9;
}

const median = (xs: number[]): number =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const f = await createFixture(2);
  try {
    const [p1, p2] = f.topo.pods as [Pod, Pod];
    f.dp.applyEndpointPolicy(endpointIdOf(p2), {
      ingressEnforced: true,
      egressEnforced: true,
      entries: [
        {
          direction: 'ingress',
          peer: identityOf(p1),
          protocol: Protocol.TCP,
          port: 5201,
          portPrefixLen: 16,
          deny: false,
        },
      ],
      prefixes: [],
    });
    const withProgs: number[] = [];
    const without: number[] = [];
    for (let r = 0; r < repeats; r++) {
      for (const p of [p1, p2]) f.dp.attachEndpoint({ ifindex: p.ifindex });
      withProgs.push(await iperf(p1, p2));
      for (const p of [p1, p2]) f.dp.detachEndpoint({ ifindex: p.ifindex });
      without.push(await iperf(p1, p2));
    }
    const a = median(withProgs);
    const b = median(without);
    console.log(`single-node pod-to-pod TCP, ${seconds}s x ${repeats} interleaved, medians`);
    console.log(`  programs attached + enforcing  ${a.toFixed(2)} Gbit/s`);
    console.log(`  no programs                    ${b.toFixed(2)} Gbit/s`);
    console.log(`  ratio                          ${(a / b).toFixed(3)} (target >= 0.95)`);
  } finally {
    f.dp.close();
    const left = await f.topo.destroy();
    if (left.length) console.error(`left behind: ${left.join(', ')}`);
  }
}

await main();
