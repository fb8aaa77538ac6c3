// Entry point of the node agent: `node --import tsx agent/main.ts --config FILE` (or the
// compiled dist/agent/main.js), started inside the node's network namespace.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { pino } from 'pino';
import YAML from 'yaml';
import { parseAgentConfig, startAgent, type AgentConfig, type AgentDeps } from './daemon.ts';
import { FakeEndpointDatapath } from './endpoint/fake-datapath.ts';
import type { EndpointDatapath } from './endpoint/types.ts';

const opts = new Command('isthmus-agent')
  .requiredOption('--config <file>', 'node config (JSON or YAML)')
  .parse()
  .opts<{ config: string }>();
const logger = pino({ name: 'isthmus-agent' });
const config = parseAgentConfig(YAML.parse(readFileSync(opts.config, 'utf8')));
/** The kernel datapath is loaded only when asked for, so the fake needs no addon or BPF build. */
async function openEndpointDatapath(
  c: Readonly<AgentConfig>,
): Promise<{ datapath: EndpointDatapath; maps: AgentDeps['maps']; close(): void }> {
  if (c.datapath !== 'bpf') {
    // no enforcement: the control plane (if configured) still computes, into memory maps
    const { createFakeDatapath } = await import('./datapath/fake.ts');
    return { datapath: new FakeEndpointDatapath(), maps: createFakeDatapath(), close() {} };
  }
  const { openDatapath } = await import('./datapath/datapath.ts');
  const { BpfEndpointDatapath } = await import('./endpoint/bpf-datapath.ts');
  const dp = openDatapath({ pinRoot: c.bpffs });
  return { datapath: new BpfEndpointDatapath(dp), maps: dp, close: () => dp.close() };
}

const datapath = await openEndpointDatapath(config);
const agent = await startAgent(config, {
  datapath: datapath.datapath,
  maps: datapath.maps,
  log: (msg, fields) => logger.info(fields ?? {}, msg),
});
logger.info({ node: config.nodeName, socket: agent.socketPath }, 'agent ready');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void agent
      .stop()
      .finally(() => datapath.close()) // pins and attached programs stay for the next agent
      .finally(() => process.exit(0));
  });
}
