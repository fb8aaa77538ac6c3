// Public API of the remote-cluster client: agents read other clusters' mesh etcds with it.
export * from './types.ts';
export { RemoteCluster, type RemoteClusterOptions } from './remote-cluster.ts';
export { BundleDirectory, type BundleDirectoryOptions } from './bundle-directory.ts';
export { RemoteRecords, statePrefixes, watchedPrefixes, STATE_KINDS } from './remote-records.ts';
export {
  etcdSourceFor,
  etcdHosts,
  unixServerName,
  RemoteSourceError,
  type EtcdSourceOptions,
} from './etcd-source.ts';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export { FakeRemoteStore } from './fake-source.ts';
