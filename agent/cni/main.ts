// The Isthmus CNI plugin, started by the container runtime once per pod operation. It runs as
// compiled JavaScript (dist/agent/cni/main.js) and only relays the request to the node agent's
// endpoint socket; the agent does the work. Exit 0 on success, 1 with an error result on stdout.
import { callAgent } from '../endpoint/client.ts';
import { CniCode, type EndpointRequest } from '../endpoint/types.ts';
import { addResult, errorResult, parseInvocation, versionResult, type Invocation } from './spec.ts';

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  let data = '';
  for await (const chunk of process.stdin) data += chunk;
  return data;
}

function requestOf(inv: Invocation): EndpointRequest {
  switch (inv.command) {
    case 'ADD':
      return {
        op: 'add',
        containerId: inv.containerId,
        netns: inv.netns!,
        ifname: inv.ifname,
        ...(inv.podNamespace !== undefined && { podNamespace: inv.podNamespace }),
        ...(inv.podName !== undefined && { podName: inv.podName }),
        ...(inv.conf.runtimeConfig?.namedPorts && {
          namedPorts: inv.conf.runtimeConfig.namedPorts,
        }),
      };
    case 'DEL':
      return {
        op: 'del',
        containerId: inv.containerId,
        ifname: inv.ifname,
        ...(inv.netns && { netns: inv.netns }),
      };
    case 'CHECK':
      return {
        op: 'check',
        containerId: inv.containerId,
        ifname: inv.ifname,
        netns: inv.netns!,
        ...prevResultIP(inv.conf.prevResult),
      };
  }
}

/** The pod address an earlier ADD reported (spec: CHECK verifies against prevResult). */
function prevResultIP(prev: unknown): { expectIP?: string } {
  const address = (prev as { ips?: Array<{ address?: unknown }> } | undefined)?.ips?.[0]?.address;
  return typeof address === 'string' ? { expectIP: address.split('/')[0]! } : {};
}

async function main(): Promise<number> {
  const parsed = parseInvocation(
    process.env,
    process.env.CNI_COMMAND === 'VERSION' ? '' : await readStdin(),
  );
  if (!parsed.ok) return print(errorResult(parsed.error, parsed.cniVersion), 1);
  const inv = parsed.value;
  if (inv.command === 'VERSION') return print(versionResult(), 0);
  let response;
  try {
    response = await callAgent(inv.conf.agentSocket, requestOf(inv));
  } catch (err) {
    const code = inv.command === 'ADD' ? CniCode.AGENT_UNREACHABLE : CniCode.TRY_AGAIN_LATER;
    return print(errorResult({ code, msg: (err as Error).message }, inv.conf.cniVersion), 1);
  }
  if (!response.ok) return print(errorResult(response.error, inv.conf.cniVersion), 1);
  if (inv.command === 'ADD' && response.result)
    return print(addResult(response.result, inv.conf.cniVersion), 0);
  return 0;
}

function print(result: object, code: number): number {
  process.stdout.write(JSON.stringify(result) + '\n');
  return code;
}

process.exitCode = await main();
