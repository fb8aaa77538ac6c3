// `isthmus agent status` against a real agent socket (an EndpointServer on a unix socket in a temp
// dir) answering a fixed status: the table and JSON outputs, and exit code 3 when not converged.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { AgentStatus } from '../agent/daemon/types.ts';
import { FakeEndpointDatapath } from '../agent/endpoint/fake-datapath.ts';
import { FakePodLinks } from '../agent/endpoint/fake-links.ts';
import { EndpointManager } from '../agent/endpoint/manager.ts';
import { EndpointServer } from '../agent/endpoint/server.ts';
import { formatAgentStatus } from './agent.ts';

const status: AgentStatus = {
  node: 'c1-node1',
  cluster: 'c1',
  kubernetes: true,
  synced: true,
  converged: false,
  pending: ['endpoint x/b: BPF maps differ from its desired policy'],
  endpoints: [
    {
      id: 2,
      pod: 'x/b',
      ip: '10.1.0.3',
      identity: 65793,
      labels: 'k8s:app=b;',
      policyRevision: 4,
      ingressEnforced: true,
      egressEnforced: false,
      converged: false,
    },
  ],
  ipcache: { size: 7, desired: 7, converged: true },
  policies: {
    enforced: 1,
    invalid: [
      {
        key: 'CiliumNetworkPolicy/x/l7',
        resourceVersion: '42',
        reason: 'spec.ingress[0].toPorts[0].rules: Forbidden: L7 rules are not supported',
        lastGoodEnforced: true,
      },
    ],
  },
};

function isthmus(args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args]);
    let stdout = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout });
    });
  });
}

test('agent status over the socket: JSON as served, table with reasons, exit 3 when not converged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-agent-cli-'));
  const socket = join(dir, 'endpoint.sock');
  const manager = new EndpointManager({
    podCIDR: '10.1.0.0/24',
    datapath: new FakeEndpointDatapath(),
    links: new FakePodLinks(),
  });
  const server = new EndpointServer(socket, manager, async () => status);
  await server.start();
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const json = await isthmus(['agent', 'status', '--socket', socket, '--output', 'json']);
  t.is(json.code, 3);
  t.deepEqual(JSON.parse(json.stdout), { agents: [status] });
  const table = await isthmus(['agent', 'status', '--socket', socket]);
  t.is(table.code, 3);
  t.is(table.stdout.trimEnd(), formatAgentStatus(status));
  t.regex(table.stdout, /converged: false/);
  t.regex(
    table.stdout,
    /CiliumNetworkPolicy\/x\/l7@42: .*L7 rules.*last good version stays enforced/,
  );
  t.regex(table.stdout, /x\/b\s+10\.1\.0\.3\s+65793\s+4\s+in\s+false/);
  const missing = await isthmus(['agent', 'status', '--socket', join(dir, 'nope.sock')]);
  t.is(missing.code, 1);
});
