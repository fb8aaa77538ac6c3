// CNI spec 1.0.0 for the Isthmus plugin: parsing of the CNI_* environment and the network
// config, and formatting of results and error results. Pure functions, no I/O.
import { CniCode, type AddResult, type EndpointError, type NamedPort } from '../endpoint/types.ts';

export const CNI_VERSION = '1.0.0';
export const SUPPORTED_VERSIONS = [CNI_VERSION];
export const PLUGIN_TYPE = 'isthmus';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION';

/** The plugin's network config (stdin). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  /** the node agent's endpoint socket */
  agentSocket: string;
  /** optional: named container ports of the pod (our runtimeConfig key; the lab kubelet sets it) */
  runtimeConfig?: { namedPorts?: NamedPort[] };
  prevResult?: unknown;
}

export interface Invocation {
  command: Exclude<CniCommand, 'VERSION'>;
  containerId: string;
  netns: string | undefined;
  ifname: string;
  podNamespace?: string;
  podName?: string;
  conf: NetConf;
}

export type Parsed =
  | { ok: true; value: Invocation | { command: 'VERSION' } }
  | { ok: false; error: EndpointError; cniVersion: string };

type Env = Record<string, string | undefined>;

/** Turns environment and stdin into an invocation, or into the CNI error to print. */
export function parseInvocation(env: Env, stdin: string): Parsed {
  const command = env.CNI_COMMAND;
  if (command === 'VERSION') return { ok: true, value: { command: 'VERSION' } };
  const failEnv = (msg: string, details?: string): Parsed => ({
    ok: false,
    error: { code: CniCode.INVALID_ENV, msg, ...(details && { details }) },
    cniVersion: CNI_VERSION,
  });
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK')
    return failEnv(
      `CNI_COMMAND ${JSON.stringify(command ?? '')} is not one of ADD, DEL, CHECK, VERSION`,
    );

  const conf = parseNetConf(stdin);
  if (!conf.ok) return conf;
  const version = conf.value.cniVersion;
  const withVersion = (p: Parsed): Parsed => (p.ok ? p : { ...p, cniVersion: version });

  for (const name of ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'] as const) {
    if (!env[name])
      return withVersion(
        failEnv(
          `${name} is not set`,
          'the container runtime must set every CNI_* variable the spec requires',
        ),
      );
  }
  // DEL must work when the namespace is already gone; ADD and CHECK need it.
  if (command !== 'DEL' && !env.CNI_NETNS) return withVersion(failEnv('CNI_NETNS is not set'));
  const args = parseCniArgs(env.CNI_ARGS ?? '');
  if (!args.ok) return withVersion(failEnv(args.msg));
  return {
    ok: true,
    value: {
      command,
      containerId: env.CNI_CONTAINERID!,
      netns: env.CNI_NETNS || undefined,
      ifname: env.CNI_IFNAME!,
      ...(args.value.K8S_POD_NAMESPACE !== undefined && {
        podNamespace: args.value.K8S_POD_NAMESPACE,
      }),
      ...(args.value.K8S_POD_NAME !== undefined && { podName: args.value.K8S_POD_NAME }),
      conf: conf.value,
    },
  };
}

function parseNetConf(
  stdin: string,
): { ok: true; value: NetConf } | { ok: false; error: EndpointError; cniVersion: string } {
  const fail = (code: number, msg: string, cniVersion = CNI_VERSION) => ({
    ok: false as const,
    error: { code, msg },
    cniVersion,
  });
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    return {
      ok: false,
      error: {
        code: CniCode.DECODE_FAILURE,
        msg: 'network config on stdin is not JSON',
        details: (err as Error).message,
      },
      cniVersion: CNI_VERSION,
    };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return fail(CniCode.DECODE_FAILURE, 'network config on stdin is not a JSON object');
  const c = raw as Record<string, unknown>;
  if (typeof c.cniVersion !== 'string')
    return fail(CniCode.INVALID_CONFIG, 'network config has no cniVersion');
  if (!SUPPORTED_VERSIONS.includes(c.cniVersion)) {
    return fail(
      CniCode.INCOMPATIBLE_VERSION,
      `CNI version ${c.cniVersion} is not supported; this plugin speaks ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  }
  if (typeof c.name !== 'string' || !c.name)
    return fail(CniCode.INVALID_CONFIG, 'network config has no name', c.cniVersion);
  if (c.type !== PLUGIN_TYPE)
    return fail(
      CniCode.INVALID_CONFIG,
      `network config type is ${JSON.stringify(c.type)}, expected "${PLUGIN_TYPE}"`,
      c.cniVersion,
    );
  if (typeof c.agentSocket !== 'string' || !c.agentSocket) {
    return fail(
      CniCode.INVALID_CONFIG,
      "network config has no agentSocket: set it to the node agent's endpoint socket path",
      c.cniVersion,
    );
  }
  return { ok: true, value: c as unknown as NetConf };
}

/** CNI_ARGS: "K=V;K=V". */
export function parseCniArgs(
  s: string,
): { ok: true; value: Record<string, string> } | { ok: false; msg: string } {
  const out: Record<string, string> = {};
  for (const pair of s.split(';')) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    if (eq <= 0)
      return { ok: false, msg: `CNI_ARGS item ${JSON.stringify(pair)} is not KEY=VALUE` };
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { ok: true, value: out };
}

/** The ADD success result (spec 1.0: interfaces, ips, routes; ips[].interface indexes interfaces). */
export function addResult(r: AddResult, cniVersion = CNI_VERSION): object {
  const ep = r.endpoint;
  return {
    cniVersion,
    interfaces: [
      { name: ep.hostIfname, mac: ep.hostMac },
      { name: ep.podIfname, mac: ep.podMac, sandbox: ep.netnsPath },
    ],
    ips: [{ address: `${ep.ip}/32`, gateway: r.gateway, interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: r.gateway }],
    dns: {},
  };
}

export function errorResult(error: EndpointError, cniVersion = CNI_VERSION): object {
  return {
    cniVersion,
    code: error.code,
    msg: error.msg,
    ...(error.details !== undefined && { details: error.details }),
  };
}

export function versionResult(): object {
  return { cniVersion: CNI_VERSION, supportedVersions: SUPPORTED_VERSIONS };
}
