// Runs the lab API server as a process:
//   node --import tsx integration/apiserver/main.ts --etcd unix:///dev/shm/x/client.sock:0 \
//     --socket /run/x/apiserver.sock [--listen 10.0.0.2:6443]
// Prints one JSON line {"ready":true,...} on stdout once listening; stops on SIGTERM/SIGINT.
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { startApiServer } from './server.ts';

const USAGE =
  'usage: main.ts --etcd URL [--etcd-ca FILE --etcd-cert FILE --etcd-key FILE --etcd-server-name NAME] [--socket PATH] [--listen IP:PORT] [--prefix /registry] [--service-cidr 10.96.0.0/16]';

function etcdOptions(values: Record<string, string | undefined>): IOptions {
  const opts: IOptions = { hosts: values['etcd']! };
  if (values['etcd-ca']) {
    opts.credentials = {
      rootCertificate: readFileSync(values['etcd-ca']),
      ...(values['etcd-cert'] ? { certChain: readFileSync(values['etcd-cert']) } : {}),
      ...(values['etcd-key'] ? { privateKey: readFileSync(values['etcd-key']) } : {}),
    };
    // Over a unix socket the certificate is checked against this name instead of a host.
    if (values['etcd-server-name'])
      opts.grpcOptions = { 'grpc.ssl_target_name_override': values['etcd-server-name'] };
  }
  return opts;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      etcd: { type: 'string' },
      'etcd-ca': { type: 'string' },
      'etcd-cert': { type: 'string' },
      'etcd-key': { type: 'string' },
      'etcd-server-name': { type: 'string' },
      socket: { type: 'string' },
      listen: { type: 'string' },
      prefix: { type: 'string' },
      'service-cidr': { type: 'string' },
    },
  });
  if (!values.etcd || (!values.socket && !values.listen)) {
    process.stderr.write(`${USAGE}\n--etcd and at least one of --socket/--listen are required\n`);
    process.exit(2);
  }
  const etcd = new Etcd3(etcdOptions(values));
  const server = await startApiServer({
    etcd,
    ...(values.socket ? { socketPath: values.socket } : {}),
    ...(values.listen ? { tcpAddress: values.listen } : {}),
    ...(values.prefix ? { prefix: values.prefix } : {}),
    ...(values['service-cidr'] ? { serviceCidr: values['service-cidr'] } : {}),
  });
  process.stdout.write(
    JSON.stringify({
      ready: true,
      pid: process.pid,
      socket: values.socket,
      listen: values.listen,
    }) + '\n',
  );
  const shutdown = async () => {
    await server.stop();
    etcd.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
}

main().catch((err: unknown) => {
  process.stderr.write(`apiserver failed to start: ${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
