// Where the lab's ClusterMesh lives: per-cluster paths of the mesh CA, certificates, mesh etcd
// and clustermesh API server, and each node's bundle directory.
import { join } from 'node:path';
import { CLIENT_SOCKET } from '../etcd/etcd-runner.ts';
import type { ClusterPlan, LabPlan, NodePlan } from './config.ts';
import { controlPlanePaths } from './control-plane.ts';

export const MESH_ETCD_PORT = 2379;

export interface MeshPaths {
  /** the mesh CA (ca.crt, ca.key) */
  caDir: string;
  caFile: string;
  /** per-cluster certificates: server, root, writer, remote-<c> */
  certDir: string;
  etcdDir: string;
  etcdSocket: string;
  /** `https://<cpIP>:2379` */
  endpoint: string;
  /** the TLS name of the mesh etcd's certificate, for unix-socket clients */
  serverName: string;
  serverLog: string;
  serverKubeconfig: string;
  /** PIDs of the mesh etcd, the clustermesh API server and the Secret mount */
  pidsFile: string;
  /** log of the Secret kube-system/cilium-clustermesh "mount" into the nodes' bundle dirs */
  mountLog: string;
}

export function meshPaths(plan: LabPlan, cluster: ClusterPlan): MeshPaths {
  const cp = controlPlanePaths(plan, cluster);
  const caDir = join(plan.runDir, 'mesh-ca');
  const etcdDir = join(cp.dir, 'mesh-etcd');
  return {
    caDir,
    caFile: join(caDir, 'ca.crt'),
    certDir: join(cp.dir, 'mesh-certs'),
    etcdDir,
    etcdSocket: join(etcdDir, CLIENT_SOCKET),
    endpoint: `https://${cluster.controlPlane.ip}:${MESH_ETCD_PORT}`,
    serverName: `${cluster.name}.mesh-etcd`,
    serverLog: join(cp.dir, 'clustermesh-apiserver.log'),
    serverKubeconfig: join(cp.dir, 'clustermesh-kubeconfig'),
    pidsFile: join(cp.dir, 'mesh-pids.json'),
    mountLog: join(cp.dir, 'secret-mount.log'),
  };
}

/** A node's directory of remote clusters' bundles (the agent config's clustermesh.bundleDir). */
export const bundleDirOf = (node: NodePlan): string => join(node.dir, 'clustermesh');

/**
 * A kubeconfig with one context per cluster (named as the cluster) on the API servers' underlay
 * addresses: usable from any lab namespace, e.g. for `isthmus clustermesh connect --context c1
 * --destination-context c2` run in a control-plane namespace.
 */
export const labKubeconfigPath = (plan: LabPlan): string => join(plan.runDir, 'kubeconfig');
