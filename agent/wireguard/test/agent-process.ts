// An agent in its own process, as the daemon runs it: starts (or adopts) the node's WireGuard,
// applies the node table, prints {pid, adopted, publicKey} and dies by SIGKILL, as a crashed
// agent would. Argument: JSON {options, nodes}.
import { WireguardAgent, type WireguardAgentOptions } from '../agent.ts';
import type { WgNode } from '../types.ts';

const { options, nodes } = JSON.parse(process.argv[2] ?? '{}') as {
  options: WireguardAgentOptions;
  nodes: WgNode[];
};
const agent = await WireguardAgent.start(options);
await agent.setPeers(nodes);
const d = agent.activeDevice;
process.stdout.write(
  JSON.stringify({ pid: d.pid, adopted: d.adopted, publicKey: agent.publicKey }) + '\n',
  () => process.kill(process.pid, 'SIGKILL'),
);
