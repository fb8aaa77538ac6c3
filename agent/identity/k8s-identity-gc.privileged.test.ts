// Identity GC against the real lab API server: unused identities go after the grace period,
// referenced or locally held ones never, and a lagging watch does not fool it.
import test from 'ava';
import { startTestCluster, sleep, waitFor } from '../k8s/test-support.ts';
import { Resource } from '../k8s/resource.ts';
import { CiliumEndpoints, CiliumIdentities, Namespaces } from '../k8s/resources.ts';
import { EndpointPublisher } from '../k8s/endpoint-publisher.ts';
import { K8sIdentityAllocator } from './k8s-allocator.ts';
import { IdentityGarbageCollector } from './k8s-identity-gc.ts';
import { podSecurityLabels } from './labels.ts';

const labels = (app: string) =>
  podSecurityLabels({ cluster: 'c1', namespace: 'app', podLabels: { app }, namespaceLabels: {} });

test.serial(
  'GC collects unused identities after the grace period, never referenced or held ones',
  async (t) => {
    const c = await startTestCluster(t, 'h6gc');
    await c.writer.create(Namespaces, { metadata: { name: 'app' } });
    const identities = new Resource(c.api, CiliumIdentities);
    const endpoints = new Resource(c.api, CiliumEndpoints);
    identities.start();
    endpoints.start();
    t.teardown(async () => {
      await identities.stop();
      await endpoints.stop();
    });
    const alloc = new K8sIdentityAllocator({ api: c.api, clusterId: 1, identities });
    const publisher = new EndpointPublisher(c.api, 'node-a', '10.213.0.1');
    const used = await alloc.allocateAsync(labels('used'));
    const unused = await alloc.allocateAsync(labels('unused'));
    const held = await alloc.allocateAsync(labels('held'));
    alloc.release(used.id);
    alloc.release(unused.id);
    await publisher.publish({
      namespace: 'app',
      podName: 'p1',
      ips: ['10.1.1.5'],
      identity: used,
      namedPorts: [],
    });
    await waitFor(() => endpoints.list().length === 1 && identities.list().length === 3);

    const gc = new IdentityGarbageCollector({
      api: c.api,
      clusterId: 1,
      identities,
      endpoints,
      graceMs: 400,
      held: () => alloc.heldIds(),
    });
    t.deepEqual(await gc.runOnce(), [], 'first sight only marks');
    await sleep(450);
    t.deepEqual(await gc.runOnce(), [unused.id]);
    const names = async () =>
      (await c.api.list(CiliumIdentities)).items.map((o) => Number(o.metadata.name)).sort();
    t.deepEqual(await names(), [used.id, held.id].sort());

    // The pod goes: its identity is collected one grace period later, the held one still not.
    await publisher.remove('app', 'p1');
    await waitFor(() => endpoints.list().length === 0);
    t.deepEqual(await gc.runOnce(), []);
    await sleep(450);
    t.deepEqual(await gc.runOnce(), [used.id]);
    t.deepEqual(await names(), [held.id]);

    // Collected ids are free again for new label sets.
    await waitFor(() => identities.list().length === 1);
    const fresh = await alloc.allocateAsync(labels('new'));
    t.is(fresh.id, Math.min(used.id, unused.id));
  },
);

test.serial(
  'GC re-checks a fresh endpoint list: a lagging watch never gets a referenced identity deleted',
  async (t) => {
    const c = await startTestCluster(t, 'h6gcl');
    await c.writer.create(Namespaces, { metadata: { name: 'app' } });
    const identities = new Resource(c.api, CiliumIdentities);
    const endpoints = new Resource(c.api, CiliumEndpoints);
    identities.start();
    endpoints.start();
    t.teardown(() => identities.stop());
    const alloc = new K8sIdentityAllocator({ api: c.api, clusterId: 1, identities });
    const id = await alloc.allocateAsync(labels('late'));
    alloc.release(id.id);
    await endpoints.synced;
    await endpoints.stop(); // the GC's view of endpoints is now frozen
    await new EndpointPublisher(c.writer, 'node-b', '10.213.0.2').publish({
      namespace: 'app',
      podName: 'p2',
      ips: ['10.1.2.5'],
      identity: id,
      namedPorts: [],
    });
    await waitFor(() => identities.list().length === 1);
    const gc = new IdentityGarbageCollector({
      api: c.api,
      clusterId: 1,
      identities,
      endpoints,
      graceMs: 200,
    });
    await gc.runOnce();
    await sleep(250);
    t.deepEqual(await gc.runOnce(), []);
    t.truthy(await c.api.get(CiliumIdentities, String(id.id)));
  },
);
