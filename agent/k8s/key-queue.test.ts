import test from 'ava';
import { KeyQueue } from './key-queue.ts';
import { Backoff } from './backoff.ts';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

// Retry timers are unref()ed (they must not keep an agent alive); the test process needs a ref.
let keepAlive: NodeJS.Timeout | undefined;
test.before(() => {
  keepAlive = setInterval(() => undefined, 1000);
});
test.after.always(() => clearInterval(keepAlive));

test('events of one key merge while it waits; the handler sees the latest state once', async (t) => {
  const state = new Map<string, number>();
  const seen: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const q = new KeyQueue(async (key) => {
    if (key === 'block') await gate;
    seen.push(`${key}=${state.get(key)}`);
  });
  q.add('block'); // occupies the single worker
  for (let v = 1; v <= 5; v++) {
    state.set('a', v);
    q.add('a');
  }
  release();
  await q.idle();
  t.deepEqual(seen, ['block=undefined', 'a=5']);
});

test('a key changed while its handler runs is handled again afterwards, never concurrently', async (t) => {
  let running = 0;
  let maxRunning = 0;
  let calls = 0;
  const q = new KeyQueue(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      calls++;
      await tick(10);
      running--;
    },
    { concurrency: 4 },
  );
  q.add('k');
  await tick(2);
  q.add('k');
  q.add('k');
  await q.idle();
  t.is(maxRunning, 1);
  t.is(calls, 2);
});

test('a failing handler is retried with growing back-off and the key is never lost', async (t) => {
  const attempts: number[] = [];
  const errors: number[] = [];
  const q = new KeyQueue(
    () => {
      attempts.push(Date.now());
      if (attempts.length < 4) throw new Error('api down');
    },
    {
      retry: { baseMs: 20, maxMs: 1000, random: () => 0.999 },
      onError: (_k, _e, n) => errors.push(n),
    },
  );
  q.add('k');
  await q.idle();
  t.is(attempts.length, 4);
  t.deepEqual(errors, [1, 2, 3]);
  const gaps = attempts.slice(1).map((a, i) => a - attempts[i]!);
  t.true(gaps[0]! >= 15, `first retry after ${gaps[0]} ms`);
  t.true(gaps[2]! >= gaps[0]! * 2, `back-off grows: ${gaps}`);
});

test('a new event for a key in back-off runs it at once', async (t) => {
  let fail = true;
  let calls = 0;
  const q = new KeyQueue(
    () => {
      calls++;
      if (fail) throw new Error('no');
    },
    { retry: { baseMs: 60_000, maxMs: 60_000 } },
  );
  q.add('k');
  await tick(5);
  t.is(calls, 1);
  fail = false;
  q.add('k');
  await q.idle();
  t.is(calls, 2);
});

test('synced resolves only after every key of the initial list was handled once', async (t) => {
  const done = new Set<string>();
  const q = new KeyQueue(
    async (key) => {
      await tick(5);
      done.add(key);
    },
    { concurrency: 2 },
  );
  for (const k of ['a', 'b', 'c']) q.add(k);
  q.markSynced();
  q.add('later');
  await q.synced;
  t.true(['a', 'b', 'c'].every((k) => done.has(k)));
  await q.idle();
  t.true(done.has('later'));
});

test('stop() drops pending retries so no timer fires afterwards', async (t) => {
  let calls = 0;
  const q = new KeyQueue(
    () => {
      calls++;
      throw new Error('x');
    },
    { retry: { baseMs: 10, maxMs: 10 } },
  );
  q.add('k');
  await tick(2);
  q.stop();
  await tick(40);
  t.is(calls, 1);
  t.is(q.length, 0);
});

test('back-off is capped and jittered within [cap/2, cap]', (t) => {
  const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0.5 });
  const delays = Array.from({ length: 8 }, () => b.next());
  t.deepEqual(delays.slice(0, 4), [75, 150, 300, 600]);
  t.true(delays.slice(4).every((d) => d === 750));
  const lo = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
  t.is(lo.next(), 50);
});
