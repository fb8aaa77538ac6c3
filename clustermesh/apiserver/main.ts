// The clustermesh API server as a process: `node --import tsx clustermesh/apiserver/main.ts ...`
// (flags in config.ts). Prints one JSON line `{"ready":true,...}` on stdout once every prefix's
// synced canary is written; stops on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { KubeClient } from '../../agent/k8s/index.ts';
import { parseConfig, type ClusterMeshApiServerConfig } from './config.ts';
import { EtcdMeshKv } from './etcd-kv.ts';
import { ClusterMeshApiServer } from './server.ts';

const logger = pino({ name: 'clustermesh-apiserver' }, pino.destination(2));

function meshEtcdClient(c: ClusterMeshApiServerConfig): Etcd3 {
  return new Etcd3({
    hosts: c.etcd,
    credentials: {
      rootCertificate: readFileSync(c.etcdCa),
      certChain: readFileSync(c.etcdCert),
      privateKey: readFileSync(c.etcdKey),
    },
    ...(c.etcdServerName
      ? { grpcOptions: { 'grpc.ssl_target_name_override': c.etcdServerName } }
      : {}),
  });
}

function kubeConfig(c: ClusterMeshApiServerConfig): KubeConfig {
  const kc = new KubeConfig();
  if (c.kubeconfig) kc.loadFromFile(c.kubeconfig);
  else kc.loadFromDefault();
  return kc;
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  const etcd = meshEtcdClient(config);
  const server = new ClusterMeshApiServer({
    cluster: { name: config.clusterName, id: config.clusterId },
    kube: new KubeClient(kubeConfig(config)),
    kv: new EtcdMeshKv(etcd),
    writer: { maxOpsPerSecond: config.maxOpsPerSecond, maxOpsPerTxn: config.maxOpsPerTxn },
    onLog: (event, fields) => logger.info(fields, event),
  });
  const shutdown = async () => {
    await server.stop();
    etcd.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
  await server.start();
  await server.synced;
  process.stdout.write(
    JSON.stringify({ ready: true, cluster: config.clusterName, ...server.status().entries }) + '\n',
  );
}

main().catch((err: unknown) => {
  logger.error(
    { code: (err as { code?: string }).code, error: String(err) },
    'clustermesh-apiserver failed',
  );
  process.exit(1);
});
