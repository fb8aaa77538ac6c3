// ClusterMesh in the lab (two or more clusters): one mesh CA; per cluster a secured mesh etcd
// (TLS + client certificates, users and roles) in its control-plane namespace on
// `<cpIP>:2379`, apart from the Kubernetes etcd, and the cluster's clustermesh API server; every
// node gets a signed bundle for every remote cluster in its bundle dir, so agents connect by
// themselves. Every file lives under the lab's run dir, and every process names it on its command
// line, so downLab ends and removes all of it.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  createMeshCa,
  issueClientCertificate,
  issueServerCertificate,
  readKeyPair,
  writeKeyPair,
  WRITER_USER,
  type KeyPairPem,
} from '../../certs/index.ts';
import { ROOT_USER, setupMeshEtcdAuth } from '../../clustermesh/etcd-auth.ts';
import { connectClusters } from '../../agent/clustermesh/connect.ts';
import { coreV1MeshApi, writeMeshInstall } from '../../agent/clustermesh/install.ts';
import { labClusterAccess } from './mesh-access.ts';
import { kubectlConfigYaml, UnixSocketKubeConfig } from '../apiserver/client.ts';
import { startEtcd, type RunningEtcd } from '../etcd/index.ts';
import type { ClusterPlan, LabPlan, NodePlan } from './config.ts';
import {
  bundleDirOf,
  labKubeconfigPath,
  MESH_ETCD_PORT,
  meshPaths,
  type MeshPaths,
} from './mesh-paths.ts';
import { controlPlanePaths } from './control-plane.ts';
import { endProcess, spawnDetached } from './processes.ts';
import { nodeEntry, repoRoot } from './record.ts';

export {
  bundleDirOf,
  labKubeconfigPath,
  MESH_ETCD_PORT,
  meshPaths,
  type MeshPaths,
} from './mesh-paths.ts';

/** How often the lab's Secret mount re-reads kube-system/cilium-clustermesh. */
export const SECRET_MOUNT_PERIOD_MS = 500;

/** Whether `Lab.up` runs the mesh for this plan. */
export const meshEnabled = (plan: LabPlan): boolean => plan.clusters.length >= 2;

/** Certificates, mesh etcds with auth, API servers, bundles for every node. */
export async function startLabMesh(plan: LabPlan, progress: (line: string) => void): Promise<void> {
  const first = meshPaths(plan, plan.clusters[0]!);
  mkdirSync(first.caDir, { recursive: true });
  writeLabKubeconfig(plan);
  const ca = await createMeshCa();
  await writeKeyPair(first.caDir, 'ca', ca);
  for (const cluster of plan.clusters) {
    const p = meshPaths(plan, cluster);
    mkdirSync(p.certDir, { recursive: true });
    await writeKeyPair(
      p.certDir,
      'server',
      await issueServerCertificate(ca, {
        cluster: cluster.name,
        ips: [cluster.controlPlane.ip],
        dnsNames: [p.serverName],
      }),
    );
    for (const user of [ROOT_USER, WRITER_USER])
      await writeKeyPair(p.certDir, user, await issueClientCertificate(ca, { user }));
    await installMeshObjects(plan, cluster, ca);
    startSecretMount(plan, cluster);
    progress(`mesh ${cluster.name}: secured mesh etcd on ${p.endpoint}`);
    const etcd = await startMeshEtcd(plan, cluster);
    const root = etcd.client();
    try {
      await setupMeshEtcdAuth(root);
    } finally {
      root.close();
    }
    progress(`mesh ${cluster.name}: clustermesh API server`);
    await startMeshApiServer(plan, cluster);
  }
  // Paired exactly as `isthmus clustermesh connect` does: users, certificates, Secrets, bundles.
  const access = await labClusterAccess(
    plan.name,
    plan.clusters.map((c) => c.name),
  );
  try {
    for (const [i, a] of access.entries())
      for (const b of access.slice(i + 1)) await connectClusters(a, b);
  } finally {
    for (const a of access) a.close();
  }
  progress('mesh: clusters connected (Secrets and bundles on every node)');
}

/**
 * What an install with clustermesh enabled puts into kube-system (agent/clustermesh/install.ts),
 * so `clustermesh connect --context` works on the lab as on real clusters.
 */
async function installMeshObjects(plan: LabPlan, cluster: ClusterPlan, ca: KeyPairPem) {
  const p = meshPaths(plan, cluster);
  const kc = new UnixSocketKubeConfig(controlPlanePaths(plan, cluster).apiSocket);
  try {
    await writeMeshInstall(coreV1MeshApi(kc), {
      clusterName: cluster.name,
      clusterId: cluster.id,
      endpoints: [p.endpoint],
      ca,
      admin: await readKeyPair(p.certDir, ROOT_USER),
    });
  } finally {
    kc.close();
  }
}

/** The lab's kubelet-like Secret volume for the cluster's nodes (secret-mount.ts). */
export function startSecretMount(plan: LabPlan, cluster: ClusterPlan): number {
  const p = meshPaths(plan, cluster);
  const started = spawnDetached(
    [
      ...nodeEntry('integration/lab/secret-mount-main.ts'),
      controlPlanePaths(plan, cluster).apiSocket,
      String(SECRET_MOUNT_PERIOD_MS),
      ...cluster.nodes.map(bundleDirOf),
    ],
    p.mountLog,
    repoRoot(),
  );
  recordPid(p, 'mount', started.pid);
  return started.pid;
}

/** Every cluster as a context named after it, on the API servers' underlay addresses. */
export function writeLabKubeconfig(plan: LabPlan): string {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: plan.clusters.map((c) => ({
      name: c.name,
      // client-node refuses an http:// server unless TLS verification is marked skipped
      cluster: {
        server: `http://${controlPlanePaths(plan, c).apiAddress}`,
        'insecure-skip-tls-verify': true,
      },
    })),
    users: [{ name: 'lab', user: {} }],
    contexts: plan.clusters.map((c) => ({
      name: c.name,
      context: { cluster: c.name, user: 'lab', namespace: 'default' },
    })),
    'current-context': plan.clusters[0]!.name,
  };
  writeFileSync(labKubeconfigPath(plan), YAML.stringify(doc));
  return labKubeconfigPath(plan);
}

/** Starts (or starts again, over its data) the cluster's mesh etcd; records its PID. */
export async function startMeshEtcd(plan: LabPlan, cluster: ClusterPlan): Promise<RunningEtcd> {
  const p = meshPaths(plan, cluster);
  const cert = (n: string) => join(p.certDir, n);
  const etcd = await startEtcd({
    name: `${plan.name}-${cluster.name}-mesh`,
    netns: cluster.controlPlane.netns,
    baseDir: p.etcdDir,
    tcpAddress: `${cluster.controlPlane.ip}:${MESH_ETCD_PORT}`,
    tls: {
      certFile: cert('server.crt'),
      keyFile: cert('server.key'),
      trustedCaFile: p.caFile,
      clientCertAuth: true,
    },
    clientTls: {
      caFile: p.caFile,
      certFile: cert(`${ROOT_USER}.crt`),
      keyFile: cert(`${ROOT_USER}.key`),
      serverName: p.serverName,
    },
  });
  recordPid(p, 'etcd', etcd.pid);
  return etcd;
}

/** Starts the cluster's clustermesh API server; resolves once it printed its ready line. */
export async function startMeshApiServer(plan: LabPlan, cluster: ClusterPlan): Promise<number> {
  const p = meshPaths(plan, cluster);
  const cp = controlPlanePaths(plan, cluster);
  // client-node refuses an http:// server unless TLS verification is marked skipped
  const kc = YAML.parse(kubectlConfigYaml(cp.apiAddress)) as {
    clusters: Array<{ cluster: Record<string, unknown> }>;
  };
  for (const c of kc.clusters) c.cluster['insecure-skip-tls-verify'] = true;
  writeFileSync(p.serverKubeconfig, YAML.stringify(kc));
  const cert = (n: string) => join(p.certDir, n);
  const logStart = existsSync(p.serverLog) ? readFileSync(p.serverLog, 'utf8').length : 0;
  const started = spawnDetached(
    [
      'nsenter',
      `--net=/run/netns/${cluster.controlPlane.netns}`,
      '--',
      ...nodeEntry('clustermesh/apiserver/main.ts'),
      ...['--cluster-name', cluster.name, '--cluster-id', String(cluster.id)],
      ...['--kubeconfig', p.serverKubeconfig, '--etcd', `unix://${p.etcdSocket}`],
      ...['--etcd-ca', p.caFile, '--etcd-cert', cert(`${WRITER_USER}.crt`)],
      ...['--etcd-key', cert(`${WRITER_USER}.key`), '--etcd-server-name', p.serverName],
    ],
    p.serverLog,
    repoRoot(),
  );
  recordPid(p, 'server', started.pid);
  let exited = false;
  void started.exited.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  while (!readFileSync(p.serverLog, 'utf8').slice(logStart).includes('"ready":true')) {
    if (exited || Date.now() > deadline)
      throw new Error(
        `clustermesh API server of ${cluster.name} ${exited ? 'exited' : 'not ready after 30 s'}; log:\n${readFileSync(p.serverLog, 'utf8').slice(logStart).slice(-1500)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
  return started.pid;
}

/** Ends the cluster's mesh etcd or API server by its recorded PID (outage and restart tests). */
export async function stopMeshProcess(
  plan: LabPlan,
  cluster: ClusterPlan,
  which: 'etcd' | 'server',
): Promise<void> {
  const p = meshPaths(plan, cluster);
  const pid = readPids(p)[which];
  if (pid) await endProcess(pid, plan.runDir + '/');
}

type Pids = Partial<Record<'etcd' | 'server' | 'mount', number>>;

function readPids(p: MeshPaths): Pids {
  try {
    return JSON.parse(readFileSync(p.pidsFile, 'utf8')) as Pids;
  } catch {
    return {};
  }
}

function recordPid(p: MeshPaths, which: keyof Pids, pid: number): void {
  writeFileSync(p.pidsFile, JSON.stringify({ ...readPids(p), [which]: pid }));
}
