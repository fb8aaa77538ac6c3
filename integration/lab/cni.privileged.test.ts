// The CNI plugin against a real agent in a lab node: ADD/DEL idempotence, CHECK, VERSION, error
// results for bad input, and no leftover interface, address, route, IPAM entry or datapath entry.
import test from 'ava';
import { callAgent } from '../../agent/endpoint/client.ts';
import { endpointSocketPath } from '../../agent/daemon.ts';
import { mustRun, runCommand } from '../../agent/routing/command.ts';
import { planLab, type NodePlan } from './config.ts';
import { Lab } from './lab.ts';
import { labLeftovers } from './leftovers.ts';
import { addNetns, deleteNetns, netnsPath } from './netns.ts';
import { cniEnv, invokeCni, netConf } from './pods.ts';
import { ensureBuilt, uniqueLabName } from './testing.ts';

const name = uniqueLabName('cni');
let lab: Lab;
let node: NodePlan;
const podNamespaces: string[] = [];

test.before(async () => {
  await ensureBuilt();
  lab = await Lab.up(
    planLab({
      name,
      encryption: 'none',
      clusters: [{ name: 'c1', id: 1, podCIDR: '10.1.0.0/16', nodes: 1 }],
    }),
  );
  node = lab.node('c1-node1');
});

test.after.always(async () => {
  for (const ns of podNamespaces) await deleteNetns(ns);
  await lab?.down();
});

async function newPodNetns(tag: string) {
  const ns = `${name}-pod-${tag}`;
  await addNetns(ns);
  podNamespaces.push(ns);
  return {
    containerId: `ctr-${tag}-${name}`,
    netnsPath: netnsPath(ns),
    namespace: 'default',
    name: tag,
  };
}

async function ip(netns: string, ...args: string[]): Promise<string> {
  return (await runCommand(['ip', '-n', netns, ...args])).stdout;
}

async function agentState() {
  const answer = await callAgent(endpointSocketPath(node.stateDir), { op: 'list' });
  if (!answer.ok) throw new Error(JSON.stringify(answer));
  return {
    endpoints: answer.endpoints ?? [],
    datapath: answer.datapathIds ?? [],
    ipam: answer.ipam ?? {},
  };
}

async function nodeLinks(): Promise<string> {
  return ip(node.netns, '-o', 'link', 'show');
}

test.serial('ADD attaches the pod; ADD again returns the same result; CHECK passes', async (t) => {
  const pod = await newPodNetns('a');
  const add = await invokeCni(cniEnv('ADD', pod), netConf(node));
  t.is(add.code, 0, JSON.stringify(add.result) + add.stderr);
  const r = add.result as {
    cniVersion: string;
    interfaces: Array<{ name: string; sandbox?: string }>;
    ips: Array<{ address: string; gateway: string; interface: number }>;
    routes: unknown[];
  };
  t.is(r.cniVersion, '1.0.0');
  t.regex(r.interfaces[0]!.name, /^lxc[0-9a-f]{11}$/);
  t.deepEqual(r.interfaces[1]!.name, 'eth0');
  t.is(r.interfaces[1]!.sandbox, pod.netnsPath);
  t.deepEqual(r.ips, [{ address: '10.1.0.2/32', gateway: '10.1.0.1', interface: 1 }]);
  t.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }]);

  t.regex(await ip(`${name}-pod-a`, '-4', 'addr', 'show', 'dev', 'eth0'), /inet 10\.1\.0\.2\/32/);
  t.regex(
    await ip(`${name}-pod-a`, 'route', 'show', 'default'),
    /default via 10\.1\.0\.1 dev eth0/,
  );
  t.regex(
    await ip(node.netns, 'route', 'show', '10.1.0.2'),
    new RegExp(`10\\.1\\.0\\.2 dev ${r.interfaces[0]!.name}`),
  );
  const state = await agentState();
  t.is(state.endpoints.length, 1);
  t.deepEqual(state.datapath, [state.endpoints[0]!.id]);
  t.like(state.endpoints[0], {
    podNamespace: 'default',
    podName: 'a',
    ip: '10.1.0.2',
    netnsPath: pod.netnsPath,
  });

  const again = await invokeCni(cniEnv('ADD', pod), netConf(node));
  t.is(again.code, 0);
  t.deepEqual(again.result, add.result);
  t.is((await agentState()).endpoints.length, 1);

  const check = await invokeCni(cniEnv('CHECK', pod), netConf(node));
  t.is(check.code, 0, JSON.stringify(check.result));
  const withPrev = (prevResult: unknown) =>
    JSON.stringify({ ...JSON.parse(netConf(node)), prevResult });
  t.is((await invokeCni(cniEnv('CHECK', pod), withPrev(add.result))).code, 0);
  const wrong = await invokeCni(
    cniEnv('CHECK', pod),
    withPrev({ ...add.result, ips: [{ address: '10.1.0.99/32', interface: 1 }] }),
  );
  t.is(wrong.code, 1);
  t.like(wrong.result, { code: 103 });
});

test.serial(
  'DEL removes everything; DEL twice and DEL of an unknown container succeed',
  async (t) => {
    const pod = {
      containerId: `ctr-a-${name}`,
      netnsPath: netnsPath(`${name}-pod-a`),
      namespace: 'default',
      name: 'a',
    };
    const del = await invokeCni(cniEnv('DEL', pod), netConf(node));
    t.is(del.code, 0, JSON.stringify(del.result));
    t.deepEqual(del.result, {}, 'DEL prints nothing on success');
    t.notRegex(await nodeLinks(), /lxc/);
    t.is(await ip(node.netns, 'route', 'show', '10.1.0.2'), '');
    t.notRegex(await ip(`${name}-pod-a`, '-o', 'link', 'show'), /eth0/);
    t.notRegex(
      await ip(node.netns, '-4', 'addr', 'show'),
      /10\.1\.0\.1/,
      'router address went with the veth',
    );
    t.deepEqual(await agentState(), { endpoints: [], datapath: [], ipam: {} });

    t.is((await invokeCni(cniEnv('DEL', pod), netConf(node))).code, 0);
    const unknown = { ...pod, containerId: 'never-added', netnsPath: '' };
    t.is((await invokeCni(cniEnv('DEL', unknown), netConf(node))).code, 0);
    const check = await invokeCni(cniEnv('CHECK', pod), netConf(node));
    t.is(check.code, 1);
    t.like(check.result, { code: 3 });
  },
);

test.serial('bad input yields a CNI error result and leaves nothing behind', async (t) => {
  const pod = await newPodNetns('b');
  const before = await nodeLinks();
  const cases: Array<[string, Record<string, string>, string, number]> = [
    ['malformed stdin', cniEnv('ADD', pod), '{"cniVersion":', 6],
    ['unsupported version', cniEnv('ADD', pod), netConf(node).replace('"1.0.0"', '"0.3.1"'), 1],
    [
      'no agent socket',
      cniEnv('ADD', pod),
      JSON.stringify({ cniVersion: '1.0.0', name: 'x', type: 'isthmus' }),
      7,
    ],
    ['missing CNI_NETNS', { ...cniEnv('ADD', pod), CNI_NETNS: '' }, netConf(node), 4],
    ['missing CNI_CONTAINERID', { ...cniEnv('ADD', pod), CNI_CONTAINERID: '' }, netConf(node), 4],
    [
      'namespace that does not exist',
      { ...cniEnv('ADD', pod), CNI_NETNS: `/run/netns/${name}-nope` },
      netConf(node),
      4,
    ],
    [
      'bad interface name',
      { ...cniEnv('ADD', pod), CNI_IFNAME: 'this-name-is-too-long' },
      netConf(node),
      4,
    ],
    ['unknown command', { ...cniEnv('ADD', pod), CNI_COMMAND: 'FROB' }, netConf(node), 4],
    [
      'agent not running',
      cniEnv('ADD', pod),
      netConf(node).replace('endpoint.sock', 'nobody.sock'),
      100,
    ],
    [
      'agent not running (DEL)',
      cniEnv('DEL', pod),
      netConf(node).replace('endpoint.sock', 'nobody.sock'),
      11,
    ],
  ];
  for (const [what, env, stdin, code] of cases) {
    const out = await invokeCni(env, stdin);
    t.is(out.code, 1, what);
    t.like(out.result, { cniVersion: '1.0.0', code }, what);
    t.is(typeof out.result.msg, 'string', what);
  }
  t.is(await nodeLinks(), before);
  t.deepEqual(await agentState(), { endpoints: [], datapath: [], ipam: {} });
});

test.serial('an ADD that fails half-way rolls back veth, address and IPAM', async (t) => {
  const pod = await newPodNetns('c');
  await mustRun([
    'ip',
    '-n',
    `${name}-pod-c`,
    'link',
    'add',
    'eth0',
    'type',
    'veth',
    'peer',
    'name',
    'x0',
  ]); // name taken (no dummy module here)
  const before = await nodeLinks();
  const add = await invokeCni(cniEnv('ADD', pod), netConf(node));
  t.is(add.code, 1);
  t.like(add.result, { code: 102 });
  t.regex(String(add.result.details), /File exists|exists/);
  t.is(await nodeLinks(), before);
  t.deepEqual(await agentState(), { endpoints: [], datapath: [], ipam: {} });
});

test.serial('VERSION lists 1.0.0', async (t) => {
  const out = await invokeCni({ CNI_COMMAND: 'VERSION' }, '');
  t.is(out.code, 0);
  t.deepEqual(out.result, { cniVersion: '1.0.0', supportedVersions: ['1.0.0'] });
});

test.serial(
  'a restarted agent restores endpoints and IPAM; CHECK then DEL still work',
  async (t) => {
    const pod = await newPodNetns('d');
    const add = await invokeCni(cniEnv('ADD', pod), netConf(node));
    t.is(add.code, 0);
    const before = await agentState();
    const oldPid = lab.agentPid(node.name);
    // a veth left by an ADD that a crash cut short: made, never recorded
    await mustRun([
      'ip',
      '-n',
      node.netns,
      'link',
      'add',
      'lxc0123456789a',
      'type',
      'veth',
      'peer',
      'name',
      'tmpcut',
    ]);
    await lab.restartAgent(node.name);
    t.notRegex(await nodeLinks(), /lxc0123456789a|tmpcut/, 'orphan veth removed on restore');
    t.not(lab.agentPid(node.name), oldPid);
    const after = await agentState();
    t.deepEqual(after.endpoints, before.endpoints);
    t.deepEqual(after.datapath, before.datapath, 'restored endpoints are re-attached');
    t.deepEqual(after.ipam, before.ipam);
    t.is((await invokeCni(cniEnv('CHECK', pod), netConf(node))).code, 0);
    const other = await newPodNetns('e');
    const add2 = await invokeCni(cniEnv('ADD', other), netConf(node));
    t.not(
      (add2.result.ips as Array<{ address: string }>)[0]!.address,
      (add.result.ips as Array<{ address: string }>)[0]!.address,
    );
    for (const p of [pod, other]) t.is((await invokeCni(cniEnv('DEL', p), netConf(node))).code, 0);
    t.deepEqual(await agentState(), { endpoints: [], datapath: [], ipam: {} });
  },
);

test.serial('lab teardown leaves nothing behind', async (t) => {
  for (const ns of podNamespaces.splice(0)) await deleteNetns(ns);
  await lab.down();
  await lab.down();
  t.deepEqual(await labLeftovers(name), []);
});
