// An agent process that dies by SIGKILL in the middle of a key rotation, as a crashed agent would.
// Argument: JSON {options, nodes, crashAt}. Prints one JSON line per step:
//   {"step":"begun", nextKey, pid, nextPid, port, nextPort}  after beginRotation
//   {"step":"switched"}                                      inside afterSwitch (routes moved)
// crashAt "begin": SIGKILL right after "begun". crashAt "switch": completes the switch and then
// waits (old device kept, quiet period of 10 min) for the test to SIGKILL it by PID.
import { WireguardAgent, type WireguardAgentOptions } from '../agent.ts';
import type { WgNode } from '../types.ts';

const { options, nodes, crashAt } = JSON.parse(process.argv[2] ?? '{}') as {
  options: WireguardAgentOptions;
  nodes: WgNode[];
  crashAt: 'begin' | 'switch';
};
const print = (o: Record<string, unknown>): Promise<void> =>
  new Promise((r) => process.stdout.write(JSON.stringify(o) + '\n', () => r()));

const agent = await WireguardAgent.start(options);
await agent.setPeers(nodes);
const nextKey = await agent.beginRotation();
await print({
  step: 'begun',
  nextKey,
  pid: agent.activeDevice.pid,
  nextPid: agent.nextDevice?.pid,
  port: agent.activeDevice.port,
  nextPort: agent.nextDevice?.port,
});
if (crashAt === 'begin') process.kill(process.pid, 'SIGKILL');
await agent.completeRotation({
  handshakeTimeoutMs: 30_000,
  afterSwitch: () => print({ step: 'switched' }),
  quietMs: 600_000,
  retireTimeoutMs: 600_000,
});
await print({ step: 'retired' }); // not reached: the test kills this process first
