// Endpoint objects against the real lab API server: published, updated idempotently, removed
// with the pod, never another node's; every agent's ipcache rows follow them.
import test from 'ava';
import { EndpointPublisher, type LocalEndpoint } from './endpoint-publisher.ts';
import { EndpointIpcache } from './endpoint-ipcache.ts';
import { Resource } from './resource.ts';
import { CiliumEndpoints, Namespaces } from './resources.ts';
import { startTestCluster, waitFor } from './test-support.ts';

function endpoint(pod: string, ip: string, id: number, app = pod): LocalEndpoint {
  return {
    namespace: 'app',
    podName: pod,
    podUid: `uid-${pod}`,
    ips: [ip],
    identity: {
      id,
      labels: new Map([
        ['app', app],
        ['io.kubernetes.pod.namespace', 'app'],
      ]),
    },
    namedPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  };
}

test.serial(
  'endpoints are published, updated, removed with the pod and never across nodes',
  async (t) => {
    const c = await startTestCluster(t, 'h6cep');
    await c.writer.create(Namespaces, { metadata: { name: 'app' } });
    const a = new EndpointPublisher(c.api, 'node-a', '10.213.0.1');
    const b = new EndpointPublisher(c.writer, 'node-b', '10.213.0.2');
    const watch = new Resource(c.api, CiliumEndpoints, { backoff: { baseMs: 50, maxMs: 400 } });
    const ipcache = new EndpointIpcache(watch);
    ipcache.start();
    watch.start();
    t.teardown(() => watch.stop());
    await ipcache.synced;

    const a1 = await a.publish(endpoint('a1', '10.1.1.5', 65792));
    await b.publish(endpoint('b1', '10.1.2.5', 65793));
    t.deepEqual(a1.status?.networking, { addressing: [{ ipv4: '10.1.1.5' }], node: '10.213.0.1' });
    t.deepEqual(a1.status?.identity?.labels, ['k8s:app=a1', 'k8s:io.kubernetes.pod.namespace=app']);
    t.deepEqual(a1.metadata.ownerReferences?.[0]?.uid, 'uid-a1');
    await waitFor(() => ipcache.all().length === 2, 5000, 'two rows');
    t.like(ipcache.get('10.1.1.5'), {
      identity: 65792,
      hostIP: '10.213.0.1',
      podName: 'a1',
      namespace: 'app',
    });
    t.deepEqual(ipcache.get('10.1.2.5')?.namedPorts, [
      { name: 'http', port: 8080, protocol: 'TCP' },
    ]);

    const again = await a.publish(endpoint('a1', '10.1.1.5', 65792));
    t.is(
      again.metadata.resourceVersion,
      a1.metadata.resourceVersion,
      'unchanged endpoint: no write',
    );
    await a.publish(endpoint('a1', '10.1.1.5', 65794, 'relabelled'));
    await waitFor(() => ipcache.get('10.1.1.5')?.identity === 65794, 5000, 'new identity row');

    t.is(await b.remove('app', 'a1'), 'not-owned');
    t.truthy(await c.api.get(CiliumEndpoints, 'a1', 'app'), 'node-b left node-a’s object alone');
    t.is(await a.remove('app', 'a1'), 'deleted');
    t.is(await a.remove('app', 'a1'), 'absent');
    await waitFor(() => ipcache.get('10.1.1.5') === undefined, 5000, 'row removed');

    // Prune after a restart: only this node's objects whose pods are gone.
    await a.publish(endpoint('a2', '10.1.1.6', 65792));
    await a.publish(endpoint('a3', '10.1.1.7', 65792));
    t.deepEqual(await a.prune(new Set(['app/a2'])), ['app/a3']);
    const left = (await c.api.list(CiliumEndpoints)).items.map((o) => o.metadata.name).sort();
    t.deepEqual(left, ['a2', 'b1']);

    // A pod that moved: the new node takes the object over, the old one can no longer delete it.
    await a.publish(endpoint('b1', '10.1.1.8', 65793));
    t.is(await b.remove('app', 'b1'), 'not-owned');
    await waitFor(() => ipcache.get('10.1.1.8')?.hostIP === '10.213.0.1', 5000, 'moved row');
    t.is(ipcache.get('10.1.2.5'), undefined);
  },
);

test.serial(
  'two objects claiming one IP: the newer holds it; deleting the stale one keeps it',
  async (t) => {
    const c = await startTestCluster(t, 'h6cip');
    await c.writer.create(Namespaces, { metadata: { name: 'app' } });
    const dead = new EndpointPublisher(c.writer, 'node-dead', '10.213.0.9');
    const live = new EndpointPublisher(c.writer, 'node-a', '10.213.0.1');
    const watch = new Resource(c.api, CiliumEndpoints);
    const ipcache = new EndpointIpcache(watch);
    ipcache.start();
    watch.start();
    t.teardown(() => watch.stop());
    await dead.publish(endpoint('old', '10.1.1.9', 65800));
    await live.publish(endpoint('new', '10.1.1.9', 65801));
    await waitFor(() => ipcache.get('10.1.1.9')?.identity === 65801, 5000, 'newer claim');
    await dead.remove('app', 'old');
    await waitFor(() => watch.get('app/old') === undefined);
    t.is(ipcache.get('10.1.1.9')?.identity, 65801);
    await live.remove('app', 'new');
    await waitFor(
      () => ipcache.get('10.1.1.9') === undefined,
      5000,
      'row gone with the last claim',
    );
  },
);
