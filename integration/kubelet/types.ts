// The lab kubelet's contracts. Imports nothing from siblings.
import type { NodePlan } from '../lab/config.ts';
import type { LabPod } from '../lab/record.ts';

/** A node this kubelet runs pods for, as the lab planned it. */
export type KubeletNode = NodePlan;

/** Written by Lab.up to <runDir>/<cluster>-cp/kubelet.json; read once at start. */
export interface KubeletConfig {
  lab: string;
  cluster: string;
  /** `ip:port` of the cluster's API server */
  apiAddress: string;
  nodes: KubeletNode[];
  /** where the pods this kubelet runs are recorded (survives a kubelet restart) */
  stateFile: string;
  /** period of the full pass (node heartbeat, every pod re-checked), ms */
  resyncMs?: number;
}

/** A pod the kubelet created: the lab's pod record plus the API object it was made for. */
export interface RunningPod extends LabPod {
  uid: string;
}
