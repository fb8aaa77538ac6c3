// Runs a short-lived system command (iproute2, nsenter) and collects its output. Shared by the
// routing reconciler and the endpoint manager, which drive the kernel through iproute2.
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly code = 'ISTHMUS_COMMAND_FAILED';
  constructor(
    readonly argv: string[],
    readonly result: CommandResult,
  ) {
    super(
      `${argv.join(' ')} exited with ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
}

/** Runs argv[0] with the rest as arguments; never throws for a non-zero exit. */
export function runCommand(argv: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) return reject(new Error('runCommand needs a command'));
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) =>
      reject(new Error(`cannot start ${cmd}: ${err.message}`, { cause: err })),
    );
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => {}); // the command may exit before reading its input
    child.stdin.end(input ?? '');
  });
}

/** Runs argv and throws a CommandError unless it exits 0; returns stdout. */
export async function mustRun(argv: string[], input?: string): Promise<string> {
  const result = await runCommand(argv, input);
  if (result.code !== 0) throw new CommandError(argv, result);
  return result.stdout;
}

/** argv prefix that runs a command inside the network namespace at `netnsPath` (only that one). */
export function inNetns(netnsPath: string | undefined, argv: string[]): string[] {
  return netnsPath === undefined ? argv : ['nsenter', `--net=${netnsPath}`, '--', ...argv];
}
