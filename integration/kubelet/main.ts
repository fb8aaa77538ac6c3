// The lab kubelet process of one cluster (started by Lab.up inside the cluster's control-plane
// namespace):  node --import tsx integration/kubelet/main.ts --config <runDir>/<c>-cp/kubelet.json
// Prints {"ready":true} once its nodes are registered and the initial pod list was handled;
// logs JSON lines on stdout; stops on SIGTERM (pods stay: they belong to the lab, not the process).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EndpointSliceController } from './endpointslices.ts';
import { ClusterKubelet } from './kubelet.ts';
import type { KubeletConfig } from './types.ts';

const log = (event: string, fields: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), event, ...fields }) + '\n');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string' } } });
  if (!values.config) {
    process.stderr.write('usage: main.ts --config KUBELET_JSON\n');
    process.exit(2);
  }
  const config = JSON.parse(readFileSync(values.config, 'utf8')) as KubeletConfig;
  const kubelet = new ClusterKubelet(config, log);
  await kubelet.start();
  await kubelet.idle();
  const slices = new EndpointSliceController(config.apiAddress, log);
  await slices.start();
  log('ready', { ready: true, cluster: config.cluster, nodes: config.nodes.map((n) => n.name) });
  // The watch's sockets may be closed between retries (their timers are unref'd): stay alive.
  const alive = setInterval(() => {}, 60_000);
  const shutdown = async () => {
    clearInterval(alive);
    await slices.stop();
    await kubelet.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
}

main().catch((err: unknown) => {
  process.stderr.write(`kubelet failed: ${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
