// One "agent" of the multi-process allocation test: reads {socketPath, clusterId, labelSets,
// concurrency} as JSON on stdin, allocates every label set through the API server's unix socket
// with its own watch of CiliumIdentities, and prints {ids, stats, elapsedMs} as one JSON line.
import { UnixSocketKubeConfig } from '../../integration/apiserver/client.ts';
import { KubeClient } from '../k8s/client.ts';
import { Resource } from '../k8s/resource.ts';
import { CiliumIdentities } from '../k8s/resources.ts';
import { K8sIdentityAllocator } from './k8s-allocator.ts';
import { labelsFromString } from './labels.ts';

interface Input {
  socketPath: string;
  clusterId: number;
  labelSets: string[];
  concurrency: number;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString()) as Input;
  const kc = new UnixSocketKubeConfig(input.socketPath);
  const api = new KubeClient(kc);
  const identities = new Resource(api, CiliumIdentities);
  identities.start();
  await identities.synced;
  const allocator = new K8sIdentityAllocator({ api, clusterId: input.clusterId, identities });
  const ids: Record<string, number> = {};
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < input.labelSets.length) {
      const text = input.labelSets[next++]!;
      ids[text] = (await allocator.allocateAsync(labelsFromString(text))).id;
    }
  };
  await Promise.all(Array.from({ length: input.concurrency }, worker));
  const elapsedMs = Math.round(performance.now() - started);
  await identities.stop();
  kc.close();
  process.stdout.write(JSON.stringify({ ids, stats: allocator.stats, elapsedMs }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
