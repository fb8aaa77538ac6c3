// Test helper run inside a test network namespace (the lab's path: TCP to https://ip:port with an
// IP SAN): verifies the bundle at argv[2] against the CA at argv[3], connects one RemoteCluster,
// prints its status as JSON once ready (or after 15 s) and exits 0 only when ready.
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { verifyBundle } from '../../../certs/index.ts';
import { MeshTable } from '../../kvstore/index.ts';
import { RemoteCluster } from '../remote-cluster.ts';
import { CapturingLogger, LOCAL, RecordingSink, waitFor } from '../test-fixtures.ts';

const [bundlePath, caPath] = process.argv.slice(2);
const verified = await verifyBundle(
  readFileSync(bundlePath!, 'utf8'),
  readFileSync(caPath!, 'utf8'),
);
if (!verified.ok) {
  console.log(JSON.stringify({ refused: verified.error }));
  process.exit(2);
}
const sink = new RecordingSink();
const remote = new RemoteCluster({
  bundle: verified.value,
  mesh: new MeshTable(LOCAL),
  sink,
  log: new CapturingLogger(),
  registry: new Registry(),
  backoff: { minMs: 100, maxMs: 500 },
});
remote.start();
let ready = true;
await waitFor('ready', () => remote.status().ready, 15_000).catch(() => (ready = false));
console.log(JSON.stringify({ status: remote.status(), calls: sink.take() }));
await remote.stop();
process.exit(ready ? 0 : 1);
