// `node --import tsx integration/lab/secret-mount-main.ts API_SOCKET PERIOD_MS DIR...`: the lab's
// Secret "mount" for one cluster's nodes (secret-mount.ts); ends on SIGTERM.
import { runSecretMount } from './secret-mount.ts';

const [apiSocket, period, ...dirs] = process.argv.slice(2);
if (!apiSocket || !dirs.length) {
  process.stderr.write('usage: secret-mount-main.ts API_SOCKET PERIOD_MS DIR...\n');
  process.exit(2);
}
const stop = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
log(`mounting into ${dirs.join(' ')}`);
await runSecretMount(apiSocket, dirs, Number(period) || 500, stop.signal, log);
process.exit(0);
