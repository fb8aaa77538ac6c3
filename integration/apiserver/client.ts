// @kubernetes/client-node 1.x over the lab API server's unix socket: a KubeConfig whose
// every request (plain calls and watches) goes through an http.Agent dialing the socket.
import http from 'node:http';
import net from 'node:net';
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';
import type { RequestOptions } from 'node:https';

class UnixSocketAgent extends http.Agent {
  constructor(private readonly socketPath: string) {
    super({ keepAlive: true });
  }
  override createConnection(
    _opts: unknown,
    cb?: (err: Error | null, s: net.Socket) => void,
  ): net.Socket {
    const socket = net.createConnection({ path: this.socketPath });
    if (cb) socket.once('connect', () => cb(null, socket));
    return socket;
  }
}

/** A KubeConfig whose requests reach `socketPath`; the URL host is only a placeholder. */
export class UnixSocketKubeConfig extends KubeConfig {
  private readonly agent: UnixSocketAgent;

  constructor(readonly socketPath: string) {
    super();
    this.agent = new UnixSocketAgent(socketPath);
    this.loadFromOptions({
      clusters: [{ name: 'lab', server: 'http://apiserver.isthmus.lab', skipTLSVerify: true }],
      users: [{ name: 'lab' }],
      contexts: [{ name: 'lab', cluster: 'lab', user: 'lab' }],
      currentContext: 'lab',
    });
  }

  override async applyToFetchOptions(
    opts: RequestOptions,
  ): ReturnType<KubeConfig['applyToFetchOptions']> {
    const init = await super.applyToFetchOptions(opts);
    (init as { agent?: http.Agent }).agent = this.agent;
    return init;
  }

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setAgent(this.agent);
  }

  /** Frees pooled sockets so the process can exit. */
  close(): void {
    this.agent.destroy();
  }
}

/** A KubeConfig for the lab API server's TCP address (for processes inside lab namespaces). */
export function kubeConfigForAddress(address: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'lab', server: `http://${address}`, skipTLSVerify: true }],
    users: [{ name: 'lab' }],
    contexts: [{ name: 'lab', cluster: 'lab', user: 'lab' }],
    currentContext: 'lab',
  });
  return kc;
}

/** kubeconfig YAML for kubectl run inside the server's namespace against its TCP address. */
export function kubectlConfigYaml(address: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: lab',
    '  cluster:',
    `    server: http://${address}`,
    'users:',
    '- name: lab',
    '  user: {}',
    'contexts:',
    '- name: lab',
    '  context: {cluster: lab, user: lab}',
    'current-context: lab',
    '',
  ].join('\n');
}
