import test from 'ava';
import { parseLabConfigYaml, planLab } from './config.ts';

test('the default plan: two clusters of two nodes, a /24 per node, world and control planes on the underlay', (t) => {
  const plan = planLab({});
  t.is(plan.name, 'demo');
  t.is(plan.underlay.netns, 'demo-underlay');
  t.is(plan.world.ip, '172.30.0.254');
  t.deepEqual(
    plan.clusters.map((c) => [
      c.name,
      c.serviceCIDR,
      c.controlPlane.ip,
      c.nodes.map((n) => [n.name, n.netns, n.ip, n.podCIDR]),
    ]),
    [
      [
        'c1',
        '172.31.1.0/24',
        '172.30.0.2',
        [
          ['c1-node1', 'demo-c1-node1', '172.30.0.4', '10.1.0.0/24'],
          ['c1-node2', 'demo-c1-node2', '172.30.0.5', '10.1.1.0/24'],
        ],
      ],
      [
        'c2',
        '172.31.2.0/24',
        '172.30.0.3',
        [
          ['c2-node1', 'demo-c2-node1', '172.30.0.6', '10.2.0.0/24'],
          ['c2-node2', 'demo-c2-node2', '172.30.0.7', '10.2.1.0/24'],
        ],
      ],
    ],
  );
  const node = plan.clusters[0]!.nodes[0]!;
  t.is(node.bpffs, '/run/isthmus/demo/c1-node1/bpf');
  t.is(node.stateDir, '/run/isthmus/demo/c1-node1/state');
  const ifs = [plan.world, ...plan.clusters.flatMap((c) => [c.controlPlane, ...c.nodes])].map(
    (h) => h.underlayIf,
  );
  t.is(new Set(ifs).size, ifs.length, 'underlay interface names are unique');
});

test('YAML config in the DESIGN.md shape', (t) => {
  const plan = parseLabConfigYaml(
    'name: t1\nencryption: none\nclusters:\n- name: a\n  id: 7\n  podCIDR: 10.7.0.0/16\n  nodes: 3\n',
  );
  t.is(plan.encryption, 'none');
  t.is(plan.clusters[0]!.nodes.length, 3);
  t.is(plan.clusters[0]!.nodes[2]!.podCIDR, '10.7.2.0/24');
});

test('overlapping CIDRs are refused with both ranges named', (t) => {
  const c = (name: string, id: number, podCIDR: string, serviceCIDR?: string) => ({
    name,
    id,
    podCIDR,
    nodes: 1,
    ...(serviceCIDR && { serviceCIDR }),
  });
  t.throws(() => planLab({ clusters: [c('a', 1, '10.0.0.0/8'), c('b', 2, '10.2.0.0/16')] }), {
    message: /cluster a podCIDR 10\.0\.0\.0\/8 overlaps cluster b podCIDR 10\.2\.0\.0\/16/,
  });
  t.throws(() => planLab({ clusters: [c('a', 1, '10.1.0.0/16', '10.1.200.0/24')] }), {
    message: /podCIDR .* overlaps cluster a serviceCIDR/,
  });
  t.throws(() => planLab({ underlay: '10.1.5.0/24', clusters: [c('a', 1, '10.1.0.0/16')] }), {
    message: /underlay .* overlaps/,
  });
  t.throws(() => planLab({ clusters: [c('a', 1, '10.1.0.0/16')], worldIP: '10.9.9.9' }), {
    message: /worldIP/,
  });
});

test('bad names, ids, sizes and CIDRs are refused with a coded error', (t) => {
  const one = { name: 'a', id: 1, podCIDR: '10.1.0.0/16', nodes: 1 };
  const bad = [
    { name: 'Bad_Name' },
    { name: 'waytoolongforaprefix' },
    { clusters: [] },
    { clusters: [one, { ...one, name: 'b', podCIDR: '10.2.0.0/16' }] },
    { clusters: [one, { ...one, id: 2 }] },
    { clusters: [{ ...one, id: 256 }] },
    { clusters: [{ ...one, podCIDR: '10.1.0.0/25' }] },
    { clusters: [{ ...one, podCIDR: '10.1.0.0/23', nodes: 3 }] },
    { clusters: [{ ...one, podCIDR: 'fd00::/64' }] },
    { clusters: [{ ...one, podCIDR: 'nope' }] },
    { underlay: '172.30.0.0/29', clusters: [{ ...one, nodes: 5 }] },
    { encryption: 'ipsec' as never },
  ];
  for (const input of bad)
    t.throws(() => planLab(input), { code: 'ISTHMUS_LAB_CONFIG' } as never, JSON.stringify(input));
  t.throws(() => parseLabConfigYaml('clusters: [\n'), { code: 'ISTHMUS_LAB_CONFIG' } as never);
});
