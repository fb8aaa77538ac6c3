// The control socket on a unix socket in a temporary directory: answers, and a close while a
// request waits (a rotate waiting for handshakes) answers it "agent stopping" at once.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlSocket, STOPPING_ANSWER } from './control-socket.ts';

function socketDir(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'h27-ctl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'wireguard.sock');
}

/** One request; resolves with the parsed answer when the server ends the connection. */
function ask(path: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => s.write(line + '\n'));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (buf += d));
    s.on('end', () => {
      s.end();
      try {
        resolve(JSON.parse(buf) as Record<string, unknown>);
      } catch (err) {
        reject(new Error(`bad answer ${JSON.stringify(buf)}`, { cause: err }));
      }
    });
    s.on('error', reject);
  });
}

test('answers one JSON line per connection', async (t) => {
  const path = socketDir(t);
  const ctl = await ControlSocket.listen(path, async (line) => ({ ok: true, echo: line }));
  t.teardown(() => ctl.close());
  t.deepEqual(await ask(path, '{"op":"status"}'), { ok: true, echo: '{"op":"status"}' });
});

test('close answers a request still waiting with "agent stopping" and does not wait for it', async (t) => {
  t.timeout(20_000); // a hang (close waiting for the connection) fails here
  const path = socketDir(t);
  let release: () => void = () => {};
  const pending = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const inFlight = new Promise<void>((r) => (started = r));
  const ctl = await ControlSocket.listen(path, async () => {
    started();
    await pending; // like a rotation waiting for peers' handshakes
    return { ok: true, rotation: 'done' };
  });
  t.teardown(release);
  const answer = ask(path, '{"op":"rotate"}');
  await inFlight;
  await ctl.close();
  t.false(ctl.listening);
  t.deepEqual(await answer, { ...STOPPING_ANSWER });
  release(); // the late result goes nowhere (the connection was answered already)
  await t.throwsAsync(ask(path, '{"op":"status"}'), { message: /ENOENT|ECONNREFUSED/ });
});

test('a failing handler answers with the error instead of leaving the client waiting', async (t) => {
  const path = socketDir(t);
  const ctl = await ControlSocket.listen(path, async () => {
    throw new Error('boom');
  });
  t.teardown(() => ctl.close());
  const a = await ask(path, '{"op":"status"}');
  t.is(a.ok, false);
  t.regex(String(a.error), /boom/);
});
