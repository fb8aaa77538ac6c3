// A throwaway network namespace for privileged tests: loopback up carrying an extra
// private address, so servers can listen on TCP inside it (never in the root one).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface TestNetns {
  readonly name: string;
  /** An IPv4 address configured inside the namespace. */
  readonly address: string;
  /** argv prefix that runs a command inside the namespace. */
  readonly exec: readonly string[];
  remove(): void;
}

export function createTestNetns(prefix: string): TestNetns {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  const octet = 1 + (randomBytes(1)[0]! % 250);
  const address = `10.213.${octet}.1`;
  execFileSync('ip', ['netns', 'add', name]);
  try {
    ip(name, 'link', 'set', 'lo', 'up');
    // No dummy module on these machines: a second address on the namespace's own loopback.
    ip(name, 'addr', 'add', `${address}/32`, 'dev', 'lo');
  } catch (err) {
    execFileSync('ip', ['netns', 'del', name]);
    throw err;
  }
  let removed = false;
  return {
    name,
    address,
    exec: ['nsenter', `--net=/run/netns/${name}`],
    remove() {
      if (removed) return;
      removed = true;
      execFileSync('ip', ['netns', 'del', name]);
    },
  };
}

function ip(netns: string, ...args: string[]): void {
  execFileSync('ip', ['-n', netns, ...args]);
}
