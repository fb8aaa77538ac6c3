import test from 'ava';
import { Registry } from 'prom-client';
import { decodeNode, encodeIPIdentityPair, encodeNode, nodePodCidrs } from './codecs.ts';
import { identityKey, ipcacheKey, nodeKey } from './keys.ts';
import { MeshTable } from './mesh-view.ts';
import { clusterConfigFor, ipIdentityPairFor, nodeRecordFor } from './records.ts';
import {
  REJECTED_RECORDS_METRIC,
  rejectedRecordsCounter,
  RemoteRecordFilter,
} from './rejections.ts';
import { encodeClusterConfig } from './codecs.ts';

test('clusterConfigFor writes the DESIGN.md cluster config', (t) => {
  t.is(
    encodeClusterConfig(clusterConfigFor(3)),
    '{"id":3,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255}}',
  );
});

test('ipIdentityPairFor writes the DESIGN.md ipcache entry', (t) => {
  const e = ipIdentityPairFor({
    ip: '10.2.1.7',
    hostIp: '172.18.0.5',
    identity: 131077,
    namespace: 'prod',
    pod: 'db-0',
    serviceAccount: 'default',
  });
  t.is(
    encodeIPIdentityPair(e),
    '{"IP":"10.2.1.7","Mask":null,"HostIP":"172.18.0.5","ID":131077,"Key":0,"Metadata":"","K8sNamespace":"prod","K8sPodName":"db-0","K8sServiceAccount":"default"}',
  );
});

test('nodeRecordFor splits pod CIDRs per family into primary and secondary', (t) => {
  const n = nodeRecordFor({
    cluster: 'c2',
    clusterId: 2,
    name: 'n1',
    internalIps: ['172.18.0.5'],
    podCidrs: ['10.2.1.0/24', 'fd00:2:1::/64', '10.2.101.0/24'],
    wireguardPubKey: Buffer.alloc(32, 1).toString('base64'),
  });
  const back = decodeNode(encodeNode(n));
  if (!back.ok) return t.fail(back.error.detail);
  t.deepEqual(nodePodCidrs(back.value), ['10.2.1.0/24', '10.2.101.0/24', 'fd00:2:1::/64']);
  t.deepEqual(back.value.IPAddresses, [{ Type: 'InternalIP', IP: '172.18.0.5' }]);
  t.is(back.value.Source, 'kvstore');
});

test('RemoteRecordFilter passes valid records and logs and counts each rejection by reason', async (t) => {
  const registry = new Registry();
  const counter = rejectedRecordsCounter(registry);
  t.is(rejectedRecordsCounter(registry), counter, 'one counter per registry');
  const logs: Array<Record<string, unknown>> = [];
  const mesh = new MeshTable({ name: 'c1', id: 1 });
  const filter = new RemoteRecordFilter(
    { name: 'c2', id: 2 },
    mesh,
    { warn: (f) => logs.push(f) },
    counter,
  );

  const node = nodeRecordFor({
    cluster: 'c2',
    clusterId: 2,
    name: 'n1',
    internalIps: ['172.18.0.5'],
    podCidrs: ['10.2.1.0/24'],
  });
  const accepted = filter.accept(nodeKey('c2', 'n1'), encodeNode(node));
  t.is(accepted?.kind, 'node');
  t.is(
    filter.accept(identityKey(131077), 'k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c1;'),
    undefined,
  );
  t.is(
    filter.accept(identityKey(131078), 'k8s:app=db;k8s:io.cilium.k8s.policy.cluster=c1;'),
    undefined,
  );
  t.is(filter.accept(ipcacheKey('10.9.9.9'), '{oops'), undefined);

  const metrics = await registry.getSingleMetricAsString(REJECTED_RECORDS_METRIC);
  t.regex(
    metrics,
    /isthmus_clustermesh_remote_records_rejected_total\{cluster="c2",reason="identity-cluster-label-mismatch"\} 2/,
  );
  t.regex(metrics, /reason="malformed-json"\} 1/);
  t.is(logs.length, 3);
  t.like(logs[0], {
    cluster: 'c2',
    key: identityKey(131077),
    reason: 'identity-cluster-label-mismatch',
  });
});
