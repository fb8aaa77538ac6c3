// Public API of the agent's Kubernetes control plane.
export { KubeClient } from './client.ts';
export { Resource, type Change, type ResourceOptions, type ResourceStats } from './resource.ts';
export { KeyQueue, type KeyHandler, type KeyQueueOptions } from './key-queue.ts';
export { Backoff, type BackoffOptions } from './backoff.ts';
export { AgentWatches, type AgentResources } from './watches.ts';
export * from './resources.ts';
export {
  EndpointPublisher,
  podNamedPorts,
  NODE_LABEL,
  IDENTITY_LABEL,
  type LocalEndpoint,
  type RemoveResult,
} from './endpoint-publisher.ts';
export {
  EndpointIpcache,
  rowsOf,
  type IpcacheRow,
  type IpcacheListener,
} from './endpoint-ipcache.ts';
export * from './types.ts';
