// Two clusters in one lab with static lab-wide node routes (what the mesh will later provide):
// pods reach each other across clusters, and restarting agents while a TCP stream runs between
// them neither breaks the stream nor changes the endpoints.
import test from 'ava';
import { spawn } from 'node:child_process';
import { endpointSocketPath } from '../../agent/daemon.ts';
import { callAgent } from '../../agent/endpoint/client.ts';
import { runCommand } from '../../agent/routing/command.ts';
import { Lab } from './lab.ts';
import { labLeftovers } from './leftovers.ts';
import type { LabPod } from './record.ts';
import { probeAllPairs } from './status.ts';
import { ensureBuilt, twoClusterPlan, uniqueLabName } from './testing.ts';

const name = uniqueLabName('mc');
const plan = twoClusterPlan(name, 1);
const ports = [
  { port: 80, protocol: 'TCP' as const },
  { port: 53, protocol: 'UDP' as const },
];
let lab: Lab | undefined;
let pods: LabPod[] = [];

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(plan, { nodeTable: 'lab' });
  pods = await lab.addPods([
    { cluster: 'c1', namespace: 'a', name: 'x', ports },
    { cluster: 'c2', namespace: 'b', name: 'y', ports },
  ]);
});

test.after.always(async () => {
  await lab?.down();
});

async function endpoints(node: string) {
  const answer = await callAgent(endpointSocketPath(lab!.node(node).stateDir), { op: 'list' });
  return answer.ok ? answer.endpoints : undefined;
}

test.serial('pods of different clusters reach each other over the underlay', async (t) => {
  const rows = await probeAllPairs(pods, ports);
  t.deepEqual(
    rows.map((r) => [r.from, r.to, r.protocol, r.allowed]),
    [
      ['c1/a/x', 'c2/b/y', 'TCP', true],
      ['c2/b/y', 'c1/a/x', 'TCP', true],
      ['c1/a/x', 'c2/b/y', 'UDP', true],
      ['c2/b/y', 'c1/a/x', 'UDP', true],
    ],
  );
});

test.serial(
  'restarting both agents during a TCP stream keeps the stream and the endpoints',
  async (t) => {
    const [x, y] = pods as [LabPod, LabPod];
    const before = { c1: await endpoints('c1-node1'), c2: await endpoints('c2-node1') };
    const server = spawn(
      'nsenter',
      [
        `--net=${y.netnsPath}`,
        '--',
        'iperf3',
        '-s',
        '-1',
        '--forceflush',
        '-B',
        y.ip,
        '-p',
        '5201',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    t.teardown(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('iperf3 server did not start')), 10_000);
      server.stdout.setEncoding('utf8').on('data', (d: string) => {
        if (d.includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const client = runCommand([
      'timeout',
      '30',
      'nsenter',
      `--net=${x.netnsPath}`,
      '--',
      'iperf3',
      '-c',
      y.ip,
      '-p',
      '5201',
      '-t',
      '5',
      '-b',
      '200M',
      '-J',
    ]);
    await new Promise((r) => setTimeout(r, 1000));
    await lab!.restartAgent('c1-node1');
    await lab!.restartAgent('c2-node1');
    const result = await client;
    t.is(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as {
      end: { sum_received: { bytes: number; seconds: number } };
      error?: string;
    };
    t.is(report.error, undefined);
    t.true(
      report.end.sum_received.seconds >= 4.5,
      `stream ran ${report.end.sum_received.seconds} s`,
    );
    t.true(
      report.end.sum_received.bytes > 50_000_000,
      `received ${report.end.sum_received.bytes} bytes`,
    );
    t.deepEqual({ c1: await endpoints('c1-node1'), c2: await endpoints('c2-node1') }, before);
    t.true((await probeAllPairs(pods, ports)).every((r) => r.allowed));
  },
);

test.serial('teardown leaves nothing behind', async (t) => {
  await lab!.down();
  lab = undefined;
  t.deepEqual(await labLeftovers(name), []);
});
