// Tooling guards the rules (STYLE.md 12): the tree is formatted and has no import cycles.
import test from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SOURCE_DIRS = ['agent', 'clustermesh', 'certs', 'cli', 'integration', 'bench'];

test('every file is formatted with prettier', async (t) => {
  const r = await run('npx', ['prettier', '--check', '.'], { maxBuffer: 1 << 24 }).catch(
    (err: { stdout: string; stderr: string }) => err,
  );
  t.notRegex(r.stderr + r.stdout, /\[warn\]/, 'run `npm run format`');
});

test('no circular imports', async (t) => {
  const args = ['madge', '--circular', '--extensions', 'ts', '--ts-config', 'tsconfig.json'];
  // madge exits non-zero when it finds a cycle and lists it on stdout.
  const r = await run('npx', [...args, ...SOURCE_DIRS], { maxBuffer: 1 << 24 }).then(
    () => ({ failed: false, stdout: '' }),
    (err: { stdout: string }) => ({ failed: true, stdout: err.stdout }),
  );
  t.false(r.failed, r.stdout);
});
