import test from 'ava';
import type { Pod, Service } from '../../agent/k8s/resources.ts';
import { desiredSlices } from './endpointslices.ts';

const svc = (
  ports: unknown[],
  selector: Record<string, string> | null = { app: 'echo' },
): Service => ({
  metadata: { name: 'echo', namespace: 'prod', uid: 'u1' },
  spec: { ...(selector && { selector }), ports },
});

const pod = (
  name: string,
  ip: string,
  opts: { ready?: boolean; ns?: string; labels?: Record<string, string>; ports?: unknown[] } = {},
): Pod => ({
  metadata: {
    name,
    namespace: opts.ns ?? 'prod',
    labels: opts.labels ?? { app: 'echo' },
    uid: `uid-${name}`,
  },
  spec: {
    nodeName: 'n1',
    containers: [
      { name: 'c', ports: (opts.ports ?? [{ name: 'http', containerPort: 8080 }]) as never },
    ],
  },
  status: {
    phase: 'Running',
    podIP: ip,
    conditions: [{ type: 'Ready', status: opts.ready === false ? 'False' : 'True' }],
  } as Pod['status'],
});

test('selected running pods become endpoints with readiness; others are left out', (t) => {
  const slices = desiredSlices(svc([{ name: 'http', port: 80, targetPort: 8080 }]), [
    pod('a', '10.1.0.5'),
    pod('b', '10.1.0.6', { ready: false }),
    pod('c', '10.1.0.7', { labels: { app: 'other' } }),
    pod('d', '10.1.0.8', { ns: 'dev' }),
  ]);
  t.is(slices.length, 1);
  t.deepEqual(slices[0]!.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  t.deepEqual(
    slices[0]!.endpoints.map((e) => [e.addresses[0], e.conditions.ready, e.targetRef.name]),
    [
      ['10.1.0.5', true, 'a'],
      ['10.1.0.6', false, 'b'],
    ],
  );
});

test('a named targetPort resolves per pod; different numbers give different slices', (t) => {
  const slices = desiredSlices(svc([{ name: 'web', port: 80, targetPort: 'http' }]), [
    pod('a', '10.1.0.5'),
    pod('b', '10.1.0.6', { ports: [{ name: 'http', containerPort: 9090 }] }),
  ]);
  t.deepEqual(slices.map((s) => s.ports[0]!.port).sort(), [8080, 9090]);
  t.not(slices[0]!.name, slices[1]!.name);
});

test('a service without selector gets no slices; no targetPort means the port itself', (t) => {
  t.deepEqual(desiredSlices(svc([{ port: 80 }], null), [pod('a', '10.1.0.5')]), []);
  const [s] = desiredSlices(svc([{ name: 'u', port: 53, protocol: 'UDP' }]), [
    pod('a', '10.1.0.5'),
  ]);
  t.deepEqual(s!.ports, [{ name: 'u', port: 53, protocol: 'UDP' }]);
});
