// The service table's shapes. Imports nothing from siblings.

export type Protocol = 'TCP' | 'UDP';
export type Affinity = 'local' | 'remote' | 'none';

export const ANNOTATION_GLOBAL = 'service.cilium.io/global';
export const ANNOTATION_SHARED = 'service.cilium.io/shared';
export const ANNOTATION_AFFINITY = 'service.cilium.io/affinity';

/** A Service's port: what the frontend listens on and the name backends resolve it by. */
export interface ServicePort {
  name: string;
  port: number;
  protocol: Protocol;
}

/** A Service as the table needs it (from Kubernetes, or a test). */
export interface ServiceSpec {
  namespace: string;
  name: string;
  clusterIPs: string[];
  ports: ServicePort[];
  annotations: Record<string, string>;
}

/** One backend address with its ports by service port name. */
export interface Backend {
  addr: string;
  /** service port name -> backend port */
  ports: Record<string, { port: number; protocol: Protocol }>;
  ready: boolean;
  /** pod name when known (local EndpointSlices) */
  podName?: string;
}

/** The annotations in force (defaults applied, invalid values reported). */
export interface GlobalSettings {
  global: boolean;
  /** export local backends to other clusters (default true when global) */
  shared: boolean;
  affinity: Affinity;
  /** annotation values that were not understood, kept so `service list` can show them */
  invalid: string[];
}

/** A backend as the table shows it: where it comes from and whether affinity selects it. */
export interface BackendView extends Backend {
  cluster: string;
  inUse: boolean;
}

export interface ServiceView {
  namespace: string;
  name: string;
  frontends: Array<{ addr: string; port: number; protocol: Protocol; portName: string }>;
  settings: GlobalSettings;
  backends: BackendView[];
}

/** What the datapath must hold for one frontend. */
export interface FrontendState {
  /** namespace/name/portName, for diagnostics */
  service: string;
  addr: string;
  port: number;
  protocol: Protocol;
  backends: Array<{ addr: string; port: number }>;
}
