// Public API of the etcd runner (lab control planes, the ClusterMesh etcd, tests).
export {
  startEtcd,
  EtcdRunnerError,
  type EtcdOptions,
  type EtcdTlsOptions,
  type EtcdClientTls,
  type RunningEtcd,
} from './etcd-runner.ts';
