// Settings of the clustermesh API server process, parsed once from flags and frozen.
import { parseArgs } from 'node:util';
import { ClusterMeshError } from './types.ts';

export interface ClusterMeshApiServerConfig {
  clusterName: string;
  clusterId: number;
  /** kubeconfig file of the local cluster; unset: in-cluster / $KUBECONFIG / ~/.kube/config */
  kubeconfig: string | undefined;
  /** mesh etcd: `unix:///path/client.sock:0` or `https://ip:port` */
  etcd: string;
  etcdCa: string;
  etcdCert: string;
  etcdKey: string;
  /** name to verify in the mesh etcd's certificate (a unix socket has none) */
  etcdServerName: string | undefined;
  maxOpsPerSecond: number;
  maxOpsPerTxn: number;
}

export const USAGE = `usage: clustermesh/apiserver/main.ts --cluster-name c1 --cluster-id 1
  --etcd unix:///dev/shm/x/client.sock:0|https://ip:2379 --etcd-ca ca.crt
  --etcd-cert clustermesh-apiserver.crt --etcd-key clustermesh-apiserver.key
  [--etcd-server-name c1.mesh-etcd] [--kubeconfig FILE]
  [--max-ops-per-second 20000] [--max-ops-per-txn 128]`;

function fail(message: string): never {
  throw new ClusterMeshError('ERR_CLUSTERMESH_CONFIG', `${message}\n${USAGE}`);
}

function positiveInt(flag: string, text: string | undefined, dflt: number, max: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    fail(`--${flag} ${text}: give an integer 1..${max}`);
  return n;
}

export function parseConfig(argv: string[]): Readonly<ClusterMeshApiServerConfig> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      'cluster-name': { type: 'string' },
      'cluster-id': { type: 'string' },
      kubeconfig: { type: 'string' },
      etcd: { type: 'string' },
      'etcd-ca': { type: 'string' },
      'etcd-cert': { type: 'string' },
      'etcd-key': { type: 'string' },
      'etcd-server-name': { type: 'string' },
      'max-ops-per-second': { type: 'string' },
      'max-ops-per-txn': { type: 'string' },
    },
    strict: true,
  });
  const need = (flag: keyof typeof v): string => {
    const value = v[flag];
    if (typeof value !== 'string' || value === '') fail(`--${flag} is required`);
    return value;
  };
  const etcd = need('etcd');
  if (!/^(unix|https):\/\//.test(etcd)) fail(`--etcd ${etcd}: use unix:///path or https://ip:port`);
  return Object.freeze({
    clusterName: need('cluster-name'),
    clusterId: positiveInt('cluster-id', need('cluster-id'), 0, 255),
    kubeconfig: v.kubeconfig,
    etcd,
    etcdCa: need('etcd-ca'),
    etcdCert: need('etcd-cert'),
    etcdKey: need('etcd-key'),
    etcdServerName: v['etcd-server-name'],
    maxOpsPerSecond: positiveInt('max-ops-per-second', v['max-ops-per-second'], 20_000, 1_000_000),
    maxOpsPerTxn: positiveInt('max-ops-per-txn', v['max-ops-per-txn'], 128, 10_000),
  });
}
