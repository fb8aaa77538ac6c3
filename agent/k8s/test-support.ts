// Fixtures for this folder's privileged tests: a namespace with a real etcd, and two lab API
// servers on it, each on its own unix socket. The "primary" one is what the code under test
// talks to and can be stopped and restarted; the "writer" one stays up, so a test can change
// objects while the primary is down.
import type { ExecutionContext } from 'ava';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { startEtcd, type RunningEtcd } from '../../integration/etcd/etcd-runner.ts';
import { createTestNetns } from '../../integration/etcd/test-netns.ts';
import {
  startApiServer,
  UnixSocketKubeConfig,
  type RunningApiServer,
} from '../../integration/apiserver/index.ts';
import { KubeClient } from './client.ts';

export interface TestCluster {
  etcd: RunningEtcd;
  socketPath: string;
  /** Client of the primary API server. */
  api: KubeClient;
  /** Client of the second API server (stays up while the primary restarts). */
  writer: KubeClient;
  stopPrimary(): Promise<void>;
  startPrimary(): Promise<void>;
}

export async function startTestCluster(
  t: ExecutionContext,
  prefix = 'h6k8s',
): Promise<TestCluster> {
  const ns = createTestNetns(prefix);
  t.teardown(() => ns.remove());
  const etcd = await startEtcd({
    name: `${prefix}-${randomBytes(3).toString('hex')}`,
    netns: ns.name,
  });
  t.teardown(() => etcd.stop());
  const etcdClient = etcd.client();
  t.teardown(() => etcdClient.close());
  const socketPath = path.join(etcd.baseDir, 'primary.sock');
  const writerSocket = path.join(etcd.baseDir, 'writer.sock');
  let primary: RunningApiServer | undefined = await startApiServer({
    etcd: etcdClient,
    socketPath,
  });
  const writerServer = await startApiServer({ etcd: etcdClient, socketPath: writerSocket });
  t.teardown(async () => {
    await primary?.stop();
    await writerServer.stop();
  });
  const kc = new UnixSocketKubeConfig(socketPath);
  const writerKc = new UnixSocketKubeConfig(writerSocket);
  t.teardown(() => {
    kc.close();
    writerKc.close();
  });
  return {
    etcd,
    socketPath,
    api: new KubeClient(kc),
    writer: new KubeClient(writerKc),
    async stopPrimary() {
      await primary?.stop();
      primary = undefined;
    },
    async startPrimary() {
      primary = await startApiServer({ etcd: etcdClient, socketPath });
    },
  };
}

/** Polls `cond` every 20 ms until it holds or `timeoutMs` passes (then throws). */
export async function waitFor(
  cond: () => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
