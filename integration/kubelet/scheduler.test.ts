import test from 'ava';
import { chooseNode, countPods } from './scheduler.ts';
import { declaredPorts, nodeStatus } from './pod-status.ts';

test('an unscheduled pod goes to the node with the fewest pods, ties to the first by name', (t) => {
  const nodes = ['n2', 'n1', 'n3'];
  t.is(chooseNode(nodes, new Map()), 'n1');
  t.is(
    chooseNode(
      nodes,
      new Map([
        ['n1', 2],
        ['n2', 1],
        ['n3', 1],
      ]),
    ),
    'n2',
  );
  t.is(
    chooseNode(
      nodes,
      new Map([
        ['n1', 1],
        ['n2', 1],
        ['n3', 0],
      ]),
    ),
    'n3',
  );
  t.throws(() => chooseNode([], new Map()), { message: /no node/ });
});

test('placing pods one after another spreads them evenly', (t) => {
  const pods: Array<{ spec: { nodeName?: string } }> = [];
  for (let i = 0; i < 7; i++)
    pods.push({ spec: { nodeName: chooseNode(['a', 'b', 'c'], countPods(pods)) } });
  const counts = countPods([...pods, { spec: {} }]);
  t.deepEqual([...counts.values()].sort(), [2, 2, 3]);
});

test('declared ports: TCP and UDP served once each, SCTP skipped, names kept', (t) => {
  const ports = declaredPorts([
    {
      name: 'a',
      ports: [
        { containerPort: 80, name: 'http' },
        { containerPort: 53, protocol: 'UDP' },
      ],
    },
    { name: 'b', ports: [{ containerPort: 80 }, { containerPort: 9, protocol: 'SCTP' }] },
  ]);
  t.deepEqual(ports, [
    { port: 80, protocol: 'TCP', name: 'http' },
    { port: 53, protocol: 'UDP' },
  ]);
  t.deepEqual(declaredPorts(undefined), []);
});

test('a node is NotReady while its agent does not answer', (t) => {
  const node = { name: 'c1-node1', ip: '172.30.0.4' } as Parameters<typeof nodeStatus>[0];
  const down = nodeStatus(node, false, 'now');
  t.is(down.conditions[0]!.status, 'False');
  t.is(down.conditions[0]!.reason, 'NetworkPluginNotReady');
  t.deepEqual(down.addresses[0], { type: 'InternalIP', address: '172.30.0.4' });
  t.is(nodeStatus(node, true, 'now').conditions[0]!.status, 'True');
});
