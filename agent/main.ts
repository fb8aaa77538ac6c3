// Entry point of the node agent: `node --import tsx agent/main.ts --config FILE` (or the
// compiled dist/agent/main.js), started inside the node's network namespace.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { pino } from 'pino';
import YAML from 'yaml';
import { parseAgentConfig, startAgent } from './daemon.ts';
import { FakeEndpointDatapath } from './endpoint/fake-datapath.ts';

const opts = new Command('isthmus-agent').requiredOption('--config <file>', 'node config (JSON or YAML)').parse().opts<{ config: string }>();
const logger = pino({ name: 'isthmus-agent' });
const config = parseAgentConfig(YAML.parse(readFileSync(opts.config, 'utf8')));
const agent = await startAgent(config, {
  datapath: new FakeEndpointDatapath(), // the real datapath (agent/datapath) replaces this
  log: (msg, fields) => logger.info(fields ?? {}, msg),
});
logger.info({ node: config.nodeName, socket: agent.socketPath }, 'agent ready');

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void agent.stop().finally(() => process.exit(0));
  });
}
