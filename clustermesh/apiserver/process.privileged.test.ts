// The entry point as the lab will run it: its own process inside the control-plane namespace,
// the Kubernetes API over TCP there (kubeconfig file), the mesh etcd over its unix socket with the
// writer certificate. It prints its ready line after the initial sync and exits on SIGTERM.
import test from 'ava';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { WRITER_USER } from '../../certs/index.ts';
import { startEtcd } from '../../integration/etcd/index.ts';
import { createTestNetns } from '../../integration/etcd/test-netns.ts';
import { startApiServerProcess } from '../../integration/apiserver/apiserver-process.ts';
import { UnixSocketKubeConfig, kubectlConfigYaml } from '../../integration/apiserver/client.ts';
import { KubeClient } from '../../agent/k8s/index.ts';
import { clusterConfigKey, ipcacheKey } from '../kvstore/index.ts';
import { ROOT_USER } from '../etcd-auth.ts';
import { MESH_ETCD_HOST, startMeshEtcd } from './test-support.ts';
import { CLUSTER, createNamespace, defs, endpoint, eventually, meshState } from './test-objects.ts';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.ts');

test.serial('main.ts mirrors as a process in the namespace and stops on SIGTERM', async (t) => {
  const ns = createTestNetns('h10proc');
  t.teardown(() => ns.remove());
  const kubeEtcd = await startEtcd({
    name: `h10proc-k-${randomBytes(3).toString('hex')}`,
    netns: ns.name,
  });
  t.teardown(() => kubeEtcd.stop());
  const socketPath = path.join(kubeEtcd.baseDir, 'apiserver.sock');
  const tcpAddress = `${ns.address}:6443`;
  const api = await startApiServerProcess({
    netns: ns.name,
    etcd: kubeEtcd.socketEndpoint,
    socketPath,
    tcpAddress,
  });
  t.teardown(() => api.stop());
  const mesh = await startMeshEtcd({ prefix: 'h10proc-m', netns: ns.name, cluster: CLUSTER.name });
  t.teardown(() => mesh.stop());
  const kc = new UnixSocketKubeConfig(socketPath);
  t.teardown(() => kc.close());
  const kube = new KubeClient(kc);
  await createNamespace(kube, 'prod');
  await kube.create(defs.CiliumEndpoints, endpoint('db-0', '10.1.1.7', 65537, '172.18.0.5'));
  const kubeconfig = path.join(kubeEtcd.baseDir, 'kubeconfig');
  // client-node refuses a plain-http server unless the cluster entry skips TLS verification
  const yaml = kubectlConfigYaml(tcpAddress).replace(
    `    server: http://${tcpAddress}`,
    `    server: http://${tcpAddress}\n    insecure-skip-tls-verify: true`,
  );
  await writeFile(kubeconfig, yaml);

  const cert = (n: string) => path.join(mesh.certDir, n);
  // prettier-ignore
  const child = spawn('nsenter', [
    `--net=/run/netns/${ns.name}`, process.execPath, '--import', 'tsx', MAIN,
    '--cluster-name', CLUSTER.name, '--cluster-id', String(CLUSTER.id), '--kubeconfig', kubeconfig,
    '--etcd', mesh.etcd.socketEndpoint, '--etcd-ca', cert('ca.crt'),
    '--etcd-cert', cert(`${WRITER_USER}.crt`), '--etcd-key', cert(`${WRITER_USER}.key`),
    '--etcd-server-name', MESH_ETCD_HOST,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-8000)));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });
  const line = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line in 30 s:\n${stderr}`)), 30_000);
    createInterface({ input: child.stdout }).once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
  });
  t.like(JSON.parse(line), { ready: true, cluster: 'c1', ipcache: 1 });
  const root = mesh.clientAs(ROOT_USER);
  t.teardown(() => root.close());
  const state = await meshState(root);
  t.true(state.has(clusterConfigKey('c1')));
  t.true(state.has(ipcacheKey('10.1.1.7')));

  await kube.delete(defs.CiliumEndpoints, 'db-0', 'prod');
  await eventually('the endpoint removed from the mesh', async () =>
    (await meshState(root)).has(ipcacheKey('10.1.1.7')) ? undefined : true,
  );
  process.kill(child.pid!, 'SIGTERM');
  t.is(await exited, 0, stderr);
});
