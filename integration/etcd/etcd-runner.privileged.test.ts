import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { startEtcd, EtcdRunnerError } from './etcd-runner.ts';
import { createTestNetns } from './test-netns.ts';

const unique = () => `h4etcd-${randomBytes(3).toString('hex')}`;

test.serial(
  'etcd runs in the namespace, serves the unix socket and TCP inside the namespace',
  async (t) => {
    const ns = createTestNetns('h4etcd');
    t.teardown(() => ns.remove());
    const etcd = await startEtcd({
      name: unique(),
      netns: ns.name,
      tcpAddress: `${ns.address}:2379`,
    });
    t.teardown(() => etcd.stop());
    t.true(etcd.baseDir.startsWith('/dev/shm/'));

    const client = etcd.client();
    t.teardown(() => client.close());
    await client.put('greeting').value('hello');
    t.is(await client.get('greeting').string(), 'hello');

    // The process lives in the test's namespace, not the root one.
    const nsOfEtcd = execFileSync('readlink', [`/proc/${etcd.pid}/ns/net`])
      .toString()
      .trim();
    const nsOfTest = execFileSync('readlink', ['/proc/self/ns/net']).toString().trim();
    t.not(nsOfEtcd, nsOfTest);

    // TCP inside the namespace answers (client run inside it with etcdctl).
    const out = execFileSync(
      'nsenter',
      [
        `--net=/run/netns/${ns.name}`,
        'etcdctl',
        `--endpoints=${etcd.tcpEndpoint}`,
        'get',
        'greeting',
        '--print-value-only',
      ],
      { env: { ...process.env, ETCDCTL_API: '3' } },
    );
    t.is(out.toString().trim(), 'hello');
  },
);

test.serial(
  'compaction makes old revisions unreadable; stop removes process and data',
  async (t) => {
    const ns = createTestNetns('h4etcd');
    t.teardown(() => ns.remove());
    const etcd = await startEtcd({ name: unique(), netns: ns.name });
    t.teardown(() => etcd.stop());
    const client = etcd.client();
    t.teardown(() => client.close());
    await client.put('k').value('1');
    const first = Number((await client.kv.range({ key: Buffer.from('k') })).header.revision);
    await client.put('k').value('2');
    const compactedAt = await etcd.compact();
    t.true(compactedAt > first);
    const err = await t.throwsAsync(client.kv.range({ key: Buffer.from('k'), revision: first }));
    t.regex(err?.message ?? '', /compacted/);

    client.close();
    await etcd.stop();
    t.throws(() => process.kill(etcd.pid, 0));
    t.false(existsSync(etcd.baseDir));
  },
);

test.serial('a missing namespace is refused with a coded error', async (t) => {
  const err = await t.throwsAsync(startEtcd({ name: unique(), netns: 'h4etcd-does-not-exist' }));
  t.true(err instanceof EtcdRunnerError);
  t.is((err as EtcdRunnerError).code, 'ETCD_BAD_OPTIONS');
});

test.serial(
  'an etcd that cannot start fails with its own log and leaves nothing behind',
  async (t) => {
    const ns = createTestNetns('h4etcd');
    t.teardown(() => ns.remove());
    const name = unique();
    const err = await t.throwsAsync(
      startEtcd({ name, netns: ns.name, extraArgs: ['--no-such-flag'] }),
    );
    t.is((err as EtcdRunnerError).code, 'ETCD_START_FAILED');
    t.regex(err?.message ?? '', /no-such-flag/);
    t.false(existsSync(`/dev/shm/${name}`));
  },
);
