// The clustermesh API server as a process: `node --import tsx clustermesh/apiserver/main.ts ...`
// (flags in config.ts). Prints one JSON line `{"ready":true,...}` on stdout once every prefix's
// synced canary is written; stops on SIGTERM/SIGINT. Replaced etcd certificate files are used for
// new connections without a restart (mesh-etcd-client.ts).
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { KubeClient } from '../../agent/k8s/index.ts';
import { parseConfig, type ClusterMeshApiServerConfig } from './config.ts';
import { MeshEtcdClient } from './mesh-etcd-client.ts';
import { ClusterMeshApiServer } from './server.ts';

const logger = pino({ name: 'clustermesh-apiserver' }, pino.destination(2));

function meshEtcdClient(c: ClusterMeshApiServerConfig): MeshEtcdClient {
  return new MeshEtcdClient({
    hosts: c.etcd,
    files: { caPath: c.etcdCa, certPath: c.etcdCert, keyPath: c.etcdKey },
    ...(c.etcdServerName && { serverName: c.etcdServerName }),
    onLog: (event, fields) => logger.info(fields, event),
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
    kv: await etcd.start(),
    writer: { maxOpsPerSecond: config.maxOpsPerSecond, maxOpsPerTxn: config.maxOpsPerTxn },
    onLog: (event, fields) => logger.info(fields, event),
  });
  const shutdown = async () => {
    await server.stop();
    etcd.stop();
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
