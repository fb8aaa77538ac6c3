// The defaulting kube-apiserver applies on write that readers of these kinds rely on
// (protocols, policyTypes, target ports), and Secret stringData folded into data. Protocols in
// atomic lists (NetworkPolicy and EndpointSlice ports) stay as written, so re-applying a file
// stays "unchanged"; readers treat an absent protocol as TCP.
import type { KubeObject } from './store.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const objects = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

function defaultProtocol(ports: unknown): void {
  for (const p of objects(ports)) p['protocol'] ??= 'TCP';
}

function defaultPod(o: KubeObject): void {
  const spec = isObj(o['spec']) ? o['spec'] : undefined;
  if (!spec) return;
  for (const c of [...objects(spec['containers']), ...objects(spec['initContainers'])])
    defaultProtocol(c['ports']);
  spec['restartPolicy'] ??= 'Always';
  spec['dnsPolicy'] ??= 'ClusterFirst';
  spec['schedulerName'] ??= 'default-scheduler';
  spec['terminationGracePeriodSeconds'] ??= 30;
  spec['serviceAccountName'] ??= 'default';
}

function defaultService(o: KubeObject): void {
  const spec = isObj(o['spec']) ? o['spec'] : ((o['spec'] = {}) as Obj);
  spec['type'] ??= 'ClusterIP';
  spec['sessionAffinity'] ??= 'None';
  for (const p of objects(spec['ports'])) {
    p['protocol'] ??= 'TCP';
    p['targetPort'] ??= p['port'];
  }
}

function defaultNetworkPolicy(o: KubeObject): void {
  const spec = isObj(o['spec']) ? o['spec'] : ((o['spec'] = {}) as Obj);
  spec['podSelector'] ??= {};
  // Port protocols stay as written: rule ports are an atomic list, so a defaulted protocol would
  // make every later `kubectl apply` of the same file patch it again. Absent means TCP.
  if (spec['policyTypes'] === undefined) {
    spec['policyTypes'] = Array.isArray(spec['egress']) ? ['Ingress', 'Egress'] : ['Ingress'];
  }
}

function foldStringData(o: KubeObject): void {
  const stringData = o['stringData'];
  if (!isObj(stringData)) return;
  const data = isObj(o['data']) ? o['data'] : {};
  for (const [k, v] of Object.entries(stringData))
    data[k] = Buffer.from(String(v)).toString('base64');
  o['data'] = data;
  delete o['stringData'];
  o['type'] ??= 'Opaque';
}

/** Fills defaults in place, as kube-apiserver does before validation and storage. */
export function applyDefaults(o: KubeObject): void {
  switch (o['kind']) {
    case 'Pod':
      return defaultPod(o);
    case 'Service':
      return defaultService(o);
    case 'NetworkPolicy':
      return defaultNetworkPolicy(o);
    case 'Secret':
      return foldStringData(o);
  }
}
