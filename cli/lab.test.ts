import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { LabConfigError } from '../integration/lab/config.ts';
import { formatStatus, loadPlan } from './lab.ts';

const dir = mkdtempSync(join(tmpdir(), 'isthmus-lab-cli-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('without a config: the default lab, two clusters of two nodes, wireguard requested', (t) => {
  const plan = loadPlan(undefined, undefined);
  t.is(plan.name, 'demo');
  t.is(plan.encryption, 'wireguard');
  t.deepEqual(
    plan.clusters.map((c) => [c.name, c.id, c.nodes.length]),
    [
      ['c1', 1, 2],
      ['c2', 2, 2],
    ],
  );
});

test('--name overrides the config name and keeps the rest; paths follow the name', (t) => {
  const file = join(dir, 'lab.yaml');
  writeFileSync(
    file,
    'name: first\nencryption: none\nclusters:\n- {name: east, id: 7, podCIDR: 10.7.0.0/16, nodes: 3}\n',
  );
  const plan = loadPlan(file, 'second');
  t.is(plan.name, 'second');
  t.is(plan.encryption, 'none');
  t.is(plan.runDir, '/run/isthmus/second');
  t.deepEqual(
    plan.clusters[0]!.nodes.map((n) => n.netns),
    ['second-east-node1', 'second-east-node2', 'second-east-node3'],
  );
  t.is(loadPlan(file, undefined).name, 'first');
});

test('a bad or missing config is a LabConfigError that names the problem', (t) => {
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'clusters:\n- {name: c1, id: 300, podCIDR: 10.1.0.0/16, nodes: 1}\n');
  t.throws(() => loadPlan(file, undefined), { instanceOf: LabConfigError, message: /id 300/ });
  t.throws(() => loadPlan(join(dir, 'missing.yaml'), undefined), {
    instanceOf: LabConfigError,
    message: /cannot read lab config/,
  });
  t.throws(() => loadPlan(undefined, 'Bad-Name'), {
    instanceOf: LabConfigError,
    message: /lab name/,
  });
});

test('the status table says what is not ready', (t) => {
  const text = formatStatus({
    name: 'x',
    ready: false,
    underlay: { netns: 'x-underlay', cidr: '172.30.0.0/24' },
    world: { netns: 'x-world', ip: '172.30.0.254' },
    clusters: [
      {
        name: 'c1',
        id: 1,
        ready: false,
        podCIDR: '10.1.0.0/16',
        serviceCIDR: '172.31.1.0/24',
        controlPlane: {
          netns: 'x-c1-cp',
          ip: '172.30.0.2',
          apiServer: { address: '172.30.0.2:6443', socket: 's', kubeconfig: 'k', ready: true },
          kubelet: { pid: 1, ready: false },
        },
        nodes: [
          {
            name: 'c1-node1',
            netns: 'x-c1-node1',
            ip: '172.30.0.3',
            podCIDR: '10.1.0.0/24',
            ready: false,
            bpffs: 'b',
          },
        ],
        pods: [{ name: 'ns/a', node: 'c1-node1', ip: '10.1.0.2', netns: 'x-c1-ns-a' }],
      },
    ],
  });
  t.regex(text, /lab x: NOT ready/);
  t.regex(text, /kubelet DOWN/);
  t.regex(text, /c1-node1 .* agent DOWN/);
  t.regex(text, /pod {2}ns\/a .* 10\.1\.0\.2 .* on c1-node1/);
});
