import test from 'ava';
import { addResult, errorResult, parseCniArgs, parseInvocation, versionResult } from './spec.ts';
import type { EndpointInfo } from '../endpoint/types.ts';

const conf = JSON.stringify({
  cniVersion: '1.0.0',
  name: 'isthmus',
  type: 'isthmus',
  agentSocket: '/run/a.sock',
});
const env = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/p',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=db-0',
};

test('a complete ADD parses, pod identity from CNI_ARGS', (t) => {
  const p = parseInvocation(env, conf);
  if (!p.ok || p.value.command === 'VERSION') return t.fail(JSON.stringify(p));
  t.like(p.value, {
    command: 'ADD',
    containerId: 'c1',
    netns: '/run/netns/p',
    ifname: 'eth0',
    podNamespace: 'prod',
    podName: 'db-0',
  });
});

test('error codes follow the spec: decode 6, version 1, config 7, env 4', (t) => {
  const code = (e: Record<string, string | undefined>, s: string) => {
    const p = parseInvocation(e, s);
    return p.ok ? 0 : p.error.code;
  };
  t.is(code(env, '{not json'), 6);
  t.is(code(env, '[1]'), 6);
  t.is(
    code(
      env,
      JSON.stringify({ cniVersion: '0.2.0', name: 'n', type: 'isthmus', agentSocket: '/s' }),
    ),
    1,
  );
  t.is(
    code(
      env,
      JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge', agentSocket: '/s' }),
    ),
    7,
  );
  t.is(code(env, JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'isthmus' })), 7);
  t.is(code({ ...env, CNI_COMMAND: 'FROB' }, conf), 4);
  t.is(code({ ...env, CNI_CONTAINERID: undefined }, conf), 4);
  t.is(code({ ...env, CNI_NETNS: '' }, conf), 4);
  t.is(code({ ...env, CNI_ARGS: 'broken' }, conf), 4);
  t.is(
    code({ ...env, CNI_COMMAND: 'DEL', CNI_NETNS: '' }, conf),
    0,
    'DEL works without a namespace',
  );
});

test('an error result carries the config version, code, msg and details', (t) => {
  const p = parseInvocation(
    env,
    JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'isthmus' }),
  );
  if (p.ok) return t.fail();
  const out = errorResult(p.error, p.cniVersion);
  t.deepEqual(Object.keys(out).sort(), ['cniVersion', 'code', 'msg']);
  t.like(out, { cniVersion: '1.0.0', code: 7 });
  t.deepEqual(errorResult({ code: 102, msg: 'm', details: 'd' }), {
    cniVersion: '1.0.0',
    code: 102,
    msg: 'm',
    details: 'd',
  });
});

test('ADD result: host and pod interfaces, ips index the pod interface, default route', (t) => {
  const endpoint = {
    hostIfname: 'lxcabc',
    hostMac: 'aa:aa:aa:aa:aa:aa',
    podIfname: 'eth0',
    podMac: 'bb:bb:bb:bb:bb:bb',
    netnsPath: '/run/netns/p',
    ip: '10.1.0.5',
  } as EndpointInfo;
  t.deepEqual(addResult({ endpoint, gateway: '10.1.0.1' }), {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'lxcabc', mac: 'aa:aa:aa:aa:aa:aa' },
      { name: 'eth0', mac: 'bb:bb:bb:bb:bb:bb', sandbox: '/run/netns/p' },
    ],
    ips: [{ address: '10.1.0.5/32', gateway: '10.1.0.1', interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
    dns: {},
  });
});

test('VERSION and CNI_ARGS', (t) => {
  t.deepEqual(versionResult(), { cniVersion: '1.0.0', supportedVersions: ['1.0.0'] });
  const p = parseInvocation({ CNI_COMMAND: 'VERSION' }, '');
  t.true(p.ok);
  t.deepEqual(parseCniArgs('A=1;;B=x=y'), { ok: true, value: { A: '1', B: 'x=y' } });
});
