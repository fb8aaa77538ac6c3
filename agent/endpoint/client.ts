// Client of the agent's endpoint socket (used by the CNI plugin and by tests).
import { createConnection } from 'node:net';
import type { EndpointRequest, EndpointResponse } from './types.ts';

export class AgentUnreachableError extends Error {
  readonly code = 'ISTHMUS_AGENT_UNREACHABLE';
}

export function callAgent(
  socketPath: string,
  req: EndpointRequest,
  timeoutMs = 60_000,
): Promise<EndpointResponse> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new AgentUnreachableError(`agent at ${socketPath} did not answer within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(req) + '\n'));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new AgentUnreachableError(
          `cannot reach the agent at ${socketPath}: ${err.message}; is the agent running on this node?`,
          { cause: err },
        ),
      );
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as EndpointResponse);
      } catch (err) {
        reject(
          new AgentUnreachableError(`agent at ${socketPath} sent a malformed answer`, {
            cause: err,
          }),
        );
      }
    });
  });
}
