// WgControl through the `wg` tool: the one code path for kernel WireGuard (netlink) and
// wireguard-go (UAPI socket /run/wireguard/<if>.sock, which `wg` finds inside the daemon's own
// mount namespace: we enter it by PID, so the socket stays private to the node).
import { mustRun } from '../routing/command.ts';
import type { DeviceState, PeerSpec, PeerState, WgControl } from './types.ts';

export interface WgTarget {
  ifname: string;
  /** /run/netns/NAME; undefined = the caller's namespace */
  netns?: string;
  /** wireguard-go's PID: `wg` runs in its mount namespace to reach its socket */
  pid?: number | null;
}

/** argv prefix entering the device's network (and wireguard-go's mount) namespace. */
export function enterDevice(t: WgTarget, argv: string[]): string[] {
  const ns: string[] = [];
  if (t.netns) ns.push(`--net=${t.netns}`);
  if (t.pid) ns.push(`--mount=/proc/${t.pid}/ns/mnt`);
  return ns.length ? ['nsenter', ...ns, '--', ...argv] : argv;
}

export class WgTool implements WgControl {
  constructor(readonly target: WgTarget) {}

  private wg(args: string[], input?: string): Promise<string> {
    return mustRun(enterDevice(this.target, ['wg', ...args]), input);
  }

  async dump(): Promise<DeviceState> {
    return parseDump(await this.wg(['show', this.target.ifname, 'dump']));
  }

  /** The private key goes through stdin: no file path has to exist in the daemon's namespace. */
  async setDevice(opts: { privateKey?: string; listenPort?: number }): Promise<void> {
    const args = ['set', this.target.ifname];
    if (opts.privateKey) args.push('private-key', '/dev/stdin');
    if (opts.listenPort !== undefined) args.push('listen-port', String(opts.listenPort));
    if (!opts.privateKey) return void (await this.wg(args));
    // Our stdin is a socket, which `wg` cannot fopen as /dev/stdin: `cat` turns it into a pipe.
    const script = 'cat | exec wg "$@"';
    await mustRun(
      enterDevice(this.target, ['sh', '-c', script, 'sh', ...args]),
      opts.privateKey + '\n',
    );
  }

  async setPeers(peers: PeerSpec[]): Promise<void> {
    if (!peers.length) return;
    const args = ['set', this.target.ifname];
    for (const p of peers) {
      args.push('peer', p.publicKey, 'endpoint', p.endpoint);
      args.push('allowed-ips', p.allowedIPs.join(','));
      args.push('persistent-keepalive', String(p.persistentKeepalive ?? 0));
    }
    await this.wg(args);
  }

  async removePeers(publicKeys: string[]): Promise<void> {
    if (!publicKeys.length) return;
    const args = ['set', this.target.ifname];
    for (const k of publicKeys) args.push('peer', k, 'remove');
    await this.wg(args); // `wg` treats removing an unknown peer as a no-op
  }
}

/** Parses `wg show <if> dump` (tab separated; first line the interface, then one per peer). */
export function parseDump(text: string): DeviceState {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const head = (lines[0] ?? '').split('\t');
  const peers: PeerState[] = lines.slice(1).map((line) => {
    const f = line.split('\t');
    const field = (i: number): string => f[i] ?? '';
    return {
      publicKey: field(0),
      endpoint: field(2) === '(none)' ? null : field(2),
      allowedIPs: field(3) === '(none)' || field(3) === '' ? [] : field(3).split(','),
      latestHandshake: Number(field(4)) || 0,
      rxBytes: Number(field(5)) || 0,
      txBytes: Number(field(6)) || 0,
      persistentKeepalive: field(7) === 'off' ? 0 : Number(field(7)) || 0,
    };
  });
  return {
    publicKey: head[1] === '(none)' ? '' : (head[1] ?? ''),
    listenPort: Number(head[2]) || 0,
    peers,
  };
}
