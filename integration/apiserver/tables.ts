// Server-side Tables (meta.k8s.io/v1) for `kubectl get`, with the columns kube-apiserver
// prints for the built-in kinds and Name/Age for the rest.
import type { ResourceType } from './resources.ts';
import type { KubeObject } from './store.ts';

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  priority: number;
  cell: (o: KubeObject, now: number) => string | number;
}

type Obj = Record<string, unknown>;
const at = (o: unknown, path: string): unknown =>
  path
    .split('.')
    .reduce<unknown>((cur, k) => (cur && typeof cur === 'object' ? (cur as Obj)[k] : undefined), o);
const str = (v: unknown, dflt = '<none>') =>
  v === undefined || v === null || v === '' ? dflt : String(v);

/** k8s.io/apimachinery duration.HumanDuration, which kubectl users read in the AGE column. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

const NAME: Column = {
  name: 'Name',
  type: 'string',
  priority: 0,
  cell: (o) => o.metadata.name ?? '',
};
const AGE: Column = {
  name: 'Age',
  type: 'string',
  priority: 0,
  cell: (o, now) => {
    const t = Date.parse(o.metadata.creationTimestamp ?? '');
    return Number.isNaN(t) ? '<unknown>' : humanDuration(now - t);
  },
};
const col = (name: string, cell: Column['cell'], priority = 0): Column => ({
  name,
  type: 'string',
  priority,
  cell,
});

function podReady(o: KubeObject): string {
  const containers = (at(o, 'spec.containers') as unknown[] | undefined) ?? [];
  const statuses = (at(o, 'status.containerStatuses') as Obj[] | undefined) ?? [];
  return `${statuses.filter((s) => s['ready'] === true).length}/${containers.length}`;
}

function nodeStatus(o: KubeObject): string {
  const conds = (at(o, 'status.conditions') as Obj[] | undefined) ?? [];
  const ready = conds.find((c) => c['type'] === 'Ready');
  const state = ready?.['status'] === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
  return at(o, 'spec.unschedulable') === true ? `${state},SchedulingDisabled` : state;
}

function servicePorts(o: KubeObject): string {
  const ports = (at(o, 'spec.ports') as Obj[] | undefined) ?? [];
  if (ports.length === 0) return '<none>';
  return ports.map((p) => `${String(p['port'])}/${str(p['protocol'], 'TCP')}`).join(',');
}

function selectorString(sel: unknown): string {
  const labels = (at(sel, 'matchLabels') as Record<string, string> | undefined) ?? {};
  const exprs = (at(sel, 'matchExpressions') as Obj[] | undefined) ?? [];
  const parts = [
    ...Object.entries(labels).map(([k, v]) => `${k}=${v}`),
    ...exprs.map(
      (e) =>
        `${String(e['key'])} ${String(e['operator'])} (${((e['values'] as string[]) ?? []).join(',')})`,
    ),
  ];
  return parts.length ? parts.join(',') : '<none>';
}

const COLUMNS: Record<string, Column[]> = {
  Pod: [
    NAME,
    col('Ready', podReady),
    col('Status', (o) => str(at(o, 'status.phase'), 'Pending')),
    { name: 'Restarts', type: 'integer', priority: 0, cell: () => 0 },
    AGE,
    col('IP', (o) => str(at(o, 'status.podIP')), 1),
    col('Node', (o) => str(at(o, 'spec.nodeName')), 1),
  ],
  Namespace: [NAME, col('Status', (o) => str(at(o, 'status.phase'), 'Active')), AGE],
  Node: [
    NAME,
    col('Status', nodeStatus),
    col('Roles', () => '<none>'),
    AGE,
    col('Version', (o) => str(at(o, 'status.nodeInfo.kubeletVersion'), '')),
  ],
  Service: [
    NAME,
    col('Type', (o) => str(at(o, 'spec.type'), 'ClusterIP')),
    col('Cluster-IP', (o) => str(at(o, 'spec.clusterIP'))),
    col('External-IP', () => '<none>'),
    col('Port(s)', servicePorts),
    AGE,
    col(
      'Selector',
      (o) => {
        const s = at(o, 'spec.selector') as Record<string, string> | undefined;
        return s
          ? Object.entries(s)
              .map(([k, v]) => `${k}=${v}`)
              .join(',') || '<none>'
          : '<none>';
      },
      1,
    ),
  ],
  NetworkPolicy: [NAME, col('Pod-Selector', (o) => selectorString(at(o, 'spec.podSelector'))), AGE],
  ConfigMap: [
    NAME,
    {
      name: 'Data',
      type: 'integer',
      priority: 0,
      cell: (o) => Object.keys((o['data'] as Obj) ?? {}).length,
    },
    AGE,
  ],
  Secret: [
    NAME,
    col('Type', (o) => str(o['type'], 'Opaque')),
    {
      name: 'Data',
      type: 'integer',
      priority: 0,
      cell: (o) => Object.keys((o['data'] as Obj) ?? {}).length,
    },
    AGE,
  ],
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function rowObject(o: KubeObject, include: IncludeObject): object | undefined {
  if (include === 'None') return undefined;
  if (include === 'Object') return o;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function toTable(
  r: ResourceType,
  objects: KubeObject[],
  listMeta: { resourceVersion?: string; continue?: string },
  include: IncludeObject,
): object {
  const columns = COLUMNS[r.kind] ?? [NAME, AGE];
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: columns.map((c, i) => ({
      name: c.name,
      type: c.type,
      format: i === 0 ? 'name' : '',
      description: c.name,
      priority: c.priority,
    })),
    rows: objects.map((o) => {
      const object = rowObject(o, include);
      return { cells: columns.map((c) => c.cell(o, now)), ...(object ? { object } : {}) };
    }),
  };
}
