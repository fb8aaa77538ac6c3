// The API server keeps no state of its own: after a restart, objects, resourceVersions and
// watches resuming from an earlier resourceVersion are exactly as before.
import test from 'ava';
import { openWatch, startKubectlControlPlane } from './test-support.ts';

test.serial(
  'a restarted API server serves the same objects and resumes watches from old resourceVersions',
  async (t) => {
    const cp = await startKubectlControlPlane(t);
    await cp.request('POST', '/api/v1/namespaces', { metadata: { name: 'r' } });
    const created = await cp.request('POST', '/api/v1/namespaces/r/configmaps', {
      metadata: { name: 'cm' },
      data: { v: '1' },
    });
    const rv = created.body.metadata.resourceVersion as string;

    const before = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/r/configmaps?watch=true&resourceVersion=${rv}`,
    );
    await cp.restartApiServer();
    await before.ended; // the old process closed its streams

    await cp.request(
      'PATCH',
      '/api/v1/namespaces/r/configmaps/cm',
      { data: { v: '2' } },
      'application/merge-patch+json',
    );
    const after = await openWatch(
      cp.socketPath,
      `/api/v1/namespaces/r/configmaps?watch=true&resourceVersion=${rv}`,
    );
    t.teardown(() => after.close());
    const ev = await after.next();
    t.is(ev.type, 'MODIFIED');
    t.is(ev.object.data.v, '2');
    const got = await cp.request('GET', '/api/v1/namespaces/r/configmaps/cm');
    t.is(got.body.metadata.uid, created.body.metadata.uid);
    const viaKubectl = await cp.kubectl(['get', 'cm', 'cm', '-n', 'r', '-o', 'jsonpath={.data.v}']);
    t.is(viaKubectl.stdout, '2');
  },
);

test.serial(
  'scale: 1,200 pods on 5 nodes, listed whole (several etcd chunks), in pages and by node with field selectors',
  async (t) => {
    const cp = await startKubectlControlPlane(t);
    await cp.request('POST', '/api/v1/namespaces', { metadata: { name: 'big' } });
    const started = Date.now();
    for (let batch = 0; batch < 24; batch++) {
      await Promise.all(
        Array.from({ length: 50 }, (_, i) => {
          const n = batch * 50 + i;
          return cp.request('POST', '/api/v1/namespaces/big/pods', {
            metadata: { name: `p${n}`, labels: { app: `a${n % 7}` } },
            spec: {
              nodeName: `node${n % 5}`,
              containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 80 }] }],
            },
          });
        }),
      );
    }
    const createMs = Date.now() - started;
    const listStart = Date.now();
    const all = await cp.request('GET', '/api/v1/pods');
    const listMs = Date.now() - listStart;
    t.is(all.body.items.length, 1200);
    t.is(
      new Set(all.body.items.map((p: { metadata: { name: string } }) => p.metadata.name)).size,
      1200,
    );
    const page1 = await cp.request('GET', '/api/v1/pods?limit=700');
    t.is(page1.body.items.length, 700);
    const token = encodeURIComponent(page1.body.metadata.continue);
    const page2 = await cp.request('GET', `/api/v1/pods?limit=700&continue=${token}`);
    t.is(page2.body.items.length, 500);
    t.falsy(page2.body.metadata.continue);
    const node3 = await cp.request('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode3');
    t.is(node3.body.items.length, 240);
    t.true(
      node3.body.items.every((p: { spec: { nodeName: string } }) => p.spec.nodeName === 'node3'),
    );
    const sel = await cp.request(
      'GET',
      `/api/v1/namespaces/big/pods?labelSelector=${encodeURIComponent('app in (a1,a2)')}`,
    );
    t.is(sel.body.items.length, 344);
    t.log(
      `1200 pod creates (50 in flight): ${createMs} ms (${Math.round(1_200_000 / createMs)}/s); list of 1200: ${listMs} ms`,
    );
  },
);
