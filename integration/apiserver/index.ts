// Public API of the lab's embedded Kubernetes API server.
export { startApiServer, type ApiServerOptions, type RunningApiServer } from './server.ts';
export {
  startApiServerProcess,
  ApiServerProcessError,
  type ApiServerProcess,
  type ApiServerProcessOptions,
} from './apiserver-process.ts';
export { UnixSocketKubeConfig, kubeConfigForAddress, kubectlConfigYaml } from './client.ts';
export { RESOURCES, type ResourceType } from './resources.ts';
