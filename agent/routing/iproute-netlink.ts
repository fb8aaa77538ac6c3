// RouteNetlink through iproute2 (`ip -json`), in the network namespace the agent runs in.
import { mustRun, runCommand, CommandError } from './command.ts';
import { ISTHMUS_ROUTE_PROTO, type OwnedRoute, type RouteNetlink } from './types.ts';

interface IpJsonRoute {
  dst?: string;
  gateway?: string;
}

export class IprouteNetlink implements RouteNetlink {
  constructor(private readonly netnsPrefix: string[] = []) {}

  async listOwned(): Promise<OwnedRoute[]> {
    const out = await mustRun([
      ...this.netnsPrefix,
      'ip',
      '-json',
      '-4',
      'route',
      'show',
      'proto',
      String(ISTHMUS_ROUTE_PROTO),
    ]);
    const rows = JSON.parse(out || '[]') as IpJsonRoute[];
    return rows.flatMap((r) => (r.dst && r.gateway ? [{ dst: r.dst, via: r.gateway }] : []));
  }

  async replace(route: OwnedRoute): Promise<void> {
    await mustRun([
      ...this.netnsPrefix,
      'ip',
      'route',
      'replace',
      route.dst,
      'via',
      route.via,
      'proto',
      String(ISTHMUS_ROUTE_PROTO),
    ]);
  }

  async remove(dst: string): Promise<void> {
    const argv = [
      ...this.netnsPrefix,
      'ip',
      'route',
      'del',
      dst,
      'proto',
      String(ISTHMUS_ROUTE_PROTO),
    ];
    const result = await runCommand(argv);
    // "No such process" (ESRCH) is netlink's answer for a route that is not there.
    if (result.code !== 0 && !/No such process/.test(result.stderr))
      throw new CommandError(argv, result);
  }
}
