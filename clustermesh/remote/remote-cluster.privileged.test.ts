// RemoteCluster against a real mesh etcd 3.4 over mTLS (TLS unix socket of an etcd in a test
// netns, client-certificate auth, a read-only reader user): initial sync, incremental updates,
// identical re-puts, an outage with changes meanwhile (exactly the removed keys deleted), hostile
// records, a config with the local ID, refused client certificates, and the bundle directory.
// The outage length is ISTHMUS_REMOTE_OUTAGE_MS (default 1500).
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { Registry, type Counter } from 'prom-client';
import { createMeshCa, issueClientCertificate } from '../../certs/index.ts';
import { MeshTable, REJECTED_RECORDS_METRIC, RejectReason } from '../kvstore/index.ts';
import { BundleDirectory } from './bundle-directory.ts';
import { RemoteCluster } from './remote-cluster.ts';
import {
  CapturingLogger,
  hostileRecords,
  LOCAL,
  RecordingSink,
  remoteFixture,
  waitFor,
} from './test-fixtures.ts';
import { READER, startMeshEtcd, type MeshEtcd } from './test-etcd.ts';
import type { KeyValue } from './types.ts';

const OUTAGE_MS = Number(process.env['ISTHMUS_REMOTE_OUTAGE_MS'] ?? 1500);
const f = remoteFixture('c2', 2);
let mesh: MeshEtcd;
let writer: Etcd3;

async function put(w: Etcd3, kvs: KeyValue[]): Promise<void> {
  for (const kv of kvs) await w.put(kv.key).value(kv.value);
}

test.before(async () => {
  mesh = await startMeshEtcd('c2', 2);
  writer = mesh.writer();
  await put(writer, [
    f.config(),
    f.node(1),
    f.node(2),
    f.identity(1),
    f.identity(2),
    f.endpoint(1, 5, 1),
    f.endpoint(2, 6, 2),
    f.service('web'),
    ...f.canaries(),
  ]);
});

test.after.always(async () => {
  writer?.close();
  await mesh?.close();
});

function reader(bundle: Parameters<typeof RemoteCluster.prototype.replaceBundle>[0]) {
  const meshView = new MeshTable(LOCAL);
  meshView.upsertNode({
    cluster: 'c1',
    name: 'l1',
    podCidrs: ['10.1.1.0/24'],
    ips: ['172.18.1.1'],
  });
  meshView.setEndpoint('10.1.1.5', 'c1');
  const sink = new RecordingSink();
  const log = new CapturingLogger();
  const registry = new Registry();
  const remote = new RemoteCluster({
    bundle,
    mesh: meshView,
    sink,
    log,
    registry,
    backoff: { minMs: 100, maxMs: 500 },
    heartbeatMs: 500,
  });
  const rejected = async (reason: string): Promise<number> => {
    const c = registry.getSingleMetric(REJECTED_RECORDS_METRIC) as Counter | undefined;
    return (await c?.get())?.values.find((x) => x.labels['reason'] === reason)?.value ?? 0;
  };
  return { remote, sink, log, rejected };
}

test.serial(
  'mTLS sync: initial listing, incremental changes, identical re-puts emit nothing',
  async (t) => {
    const { remote, sink } = reader(await mesh.bundle());
    t.teardown(() => remote.stop());
    remote.start();
    await waitFor('ready', () => remote.status().ready);
    t.deepEqual(sink.take(), [
      '+id c2 131073',
      '+id c2 131074',
      '+ip c2 10.2.1.5 131073',
      '+ip c2 10.2.2.6 131074',
      '+node c2 n1 10.2.1.0/24',
      '+node c2 n2 10.2.2.0/24',
      '+svc c2 prod/web',
    ]);
    await put(writer, [f.identity(1), f.endpoint(1, 5, 1), f.node(2)]);
    await put(writer, [f.node(3), f.endpoint(3, 7, 1)]);
    await waitFor('new endpoint', () => remote.status().counts.endpoints === 3);
    t.deepEqual(sink.take(), ['+ip c2 10.2.3.7 131073', '+node c2 n3 10.2.3.0/24']);
    await writer.delete().key(f.endpoint(3, 7, 1).key);
    await writer.delete().key(f.node(3).key);
    await waitFor('deletes', () => remote.status().counts.nodes === 2);
    t.deepEqual(sink.take(), ['-ip c2 10.2.3.7 131073', '-node c2 n3']);
  },
);

test.serial(
  `remote etcd outage (${OUTAGE_MS} ms): state kept, then exactly the removed keys deleted and the added applied`,
  async (t) => {
    const { remote, sink } = reader(await mesh.bundle());
    t.teardown(() => remote.stop());
    remote.start();
    await waitFor('ready', () => remote.status().ready);
    sink.take();
    let sawDisconnected = false;
    await mesh.outage(async (w) => {
      await waitFor('disconnected', () => remote.status().state === 'disconnected');
      sawDisconnected = true;
      await w.delete().key(f.endpoint(2, 6, 2).key);
      await w.delete().key(f.identity(2).key);
      await w.delete().key(f.service('web').key);
      await put(w, [
        f.node(4),
        f.identity(4),
        f.endpoint(4, 9, 4),
        f.service('api'),
        f.endpoint(1, 5, 1),
      ]);
    }, OUTAGE_MS);
    t.true(sawDisconnected);
    t.deepEqual(sink.take(), [], 'nothing deleted or applied while the remote was down');
    t.is(remote.status().lastError?.code !== undefined, true);
    await waitFor(
      'reconnected and synced',
      () => remote.status().connections === 2 && remote.status().ready,
      20_000,
    );
    t.deepEqual(sink.take(), [
      '+id c2 131076',
      '+ip c2 10.2.4.9 131076',
      '+node c2 n4 10.2.4.0/24',
      '+svc c2 prod/api',
      '-id c2 131074',
      '-ip c2 10.2.2.6 131074',
      '-svc c2 prod/web',
    ]);
    t.deepEqual(remote.status().counts, { identities: 2, endpoints: 2, nodes: 3, services: 1 });
  },
);

test.serial(
  'a hostile remote: each bad record rejected with its reason (log and metric), nothing applied; a config with the local ID is refused',
  async (t) => {
    const { remote, sink, log, rejected } = reader(await mesh.bundle());
    t.teardown(() => remote.stop());
    remote.start();
    await waitFor('ready', () => remote.status().ready);
    sink.take();
    const cases = hostileRecords(f);
    for (const [what, kv, reason] of cases) {
      const before = await rejected(reason);
      await put(writer, [kv]);
      await waitFor(what, () =>
        log.warnings.some((w) => w['key'] === kv.key && w['reason'] === reason),
      );
      t.is(await rejected(reason), before + 1, what);
    }
    t.deepEqual(sink.take(), [], 'nothing applied');
    for (const [, kv] of cases) await writer.delete().key(kv.key);

    await put(writer, [f.config(1)]);
    await waitFor('refused', () => remote.status().state === 'refused');
    t.is(remote.status().lastError?.code, RejectReason.ClusterIdLocal);
    t.true((await rejected(RejectReason.ClusterIdLocal)) >= 1);
    t.deepEqual(sink.take(), [], 'a refused config deletes nothing either');
    await put(writer, [f.config()]);
    await waitFor('connected again', () => remote.status().ready);
    t.deepEqual(sink.take(), []);
  },
);

test.serial(
  'mTLS: a client certificate from another CA and an expired one are refused by the remote etcd',
  async (t) => {
    const good = await mesh.bundle();
    const foreign = await issueClientCertificate(await createMeshCa(), { user: READER });
    const expired = await issueClientCertificate(mesh.ca, {
      user: READER,
      validity: {
        notBefore: new Date(Date.now() - 2 * 86400_000),
        notAfter: new Date(Date.now() - 86400_000),
      },
    });
    for (const [what, cert] of [
      ['another CA', foreign],
      ['expired', expired],
    ] as const) {
      // bypass verifyBundle (which refuses both already) to show the etcd refuses them too
      const { remote, sink } = reader({ ...good, certPem: cert.certPem, keyPem: cert.keyPem });
      t.teardown(() => remote.stop());
      remote.start();
      await waitFor(
        `${what}: a failed attempt`,
        () => remote.status().lastError !== undefined,
        15_000,
      );
      const s = remote.status();
      t.false(s.connected, what);
      t.is(s.connections, 0, what);
      t.is(s.lastError?.code, 'ERR_REMOTE_CONNECT', what);
      t.deepEqual(sink.take(), [], what);
      await remote.stop();
    }
  },
);

test.serial(
  'bundle directory on the real etcd: add connects, a rotated certificate reconnects, removal drains',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'isthmus-h11-bundles-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const write = async (text: string) => {
      await writeFile(join(dir, '.c2.tmp'), text, { mode: 0o600 });
      await rename(join(dir, '.c2.tmp'), join(dir, 'c2.jwt'));
    };
    const sink = new RecordingSink();
    const bundles = new BundleDirectory({
      dir,
      trustedCaPem: mesh.ca.certPem,
      mesh: new MeshTable(LOCAL),
      sink,
      log: new CapturingLogger(),
      registry: new Registry(),
      backoff: { minMs: 100, maxMs: 500 },
      rescanMs: 1000,
    });
    t.teardown(() => bundles.stop());
    await bundles.start();
    await write(await mesh.bundleText());
    const c2 = () => bundles.status().find((s) => s.cluster === 'c2');
    await waitFor('connected', () => c2()?.ready === true);
    const applied = sink.take();
    t.true(applied.length > 0);
    const rotated = await issueClientCertificate(mesh.ca, { user: READER });
    await write(await mesh.bundleText(rotated));
    await waitFor(
      'reconnected with the new certificate',
      () => c2()?.connections === 2 && c2()?.ready === true,
    );
    t.deepEqual(sink.take(), [], 'no deletes for a bundle change');
    await rm(join(dir, 'c2.jwt'));
    await waitFor('drained', () => c2() === undefined);
    const drained = sink.take();
    t.is(drained.length, applied.length);
    t.true(drained.every((c) => c.startsWith('-')));
  },
);

test.serial(
  'over TCP inside the namespace (https://ip:port, IP SAN), as agents in the lab connect',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'isthmus-h11-tcp-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const bundlePath = join(dir, 'c2.jwt');
    await writeFile(bundlePath, await mesh.bundleText(undefined, [mesh.tcpEndpoint]), {
      mode: 0o600,
    });
    const script = fileURLToPath(new URL('./testdata/connect-once.ts', import.meta.url));
    const { code, out, stdout } = await new Promise<{
      code: number | null;
      out: string;
      stdout: string;
    }>((resolve) => {
      execFile(
        'nsenter',
        [
          `--net=/run/netns/${mesh.netns}`,
          process.execPath,
          '--import',
          'tsx',
          script,
          bundlePath,
          mesh.caFile,
        ],
        { timeout: 30_000 },
        (err, stdout, stderr) =>
          resolve({
            code: err ? ((err as { code?: number }).code ?? 1) : 0,
            out: `${stdout}${stderr}`,
            stdout,
          }),
      );
    });
    t.is(code, 0, out);
    const { status, calls } = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      status: { ready: boolean; counts: { nodes: number } };
      calls: string[];
    };
    t.true(status.ready);
    t.true(status.counts.nodes >= 2);
    t.true(calls.includes('+node c2 n1 10.2.1.0/24'), out);
  },
);

test.serial(
  'a hung remote (etcd frozen, no connection reset) is detected by the heartbeat; state kept; it resumes',
  async (t) => {
    const bundle = await mesh.bundle();
    const meshView = new MeshTable(LOCAL);
    const sink = new RecordingSink();
    const remote = new RemoteCluster({
      bundle,
      mesh: meshView,
      sink,
      log: new CapturingLogger(),
      registry: new Registry(),
      backoff: { minMs: 100, maxMs: 300 },
      heartbeatMs: 300,
      callTimeoutMs: 1000,
    });
    t.teardown(() => remote.stop());
    remote.start();
    await waitFor('ready', () => remote.status().ready);
    const before = remote.status().counts;
    sink.take();
    const pid = mesh.pid();
    process.kill(pid, 'SIGSTOP');
    t.teardown(() => {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // already gone
      }
    });
    await waitFor('disconnected', () => remote.status().state === 'disconnected', 10_000);
    t.is(remote.status().lastError?.code, 'ERR_REMOTE_CONNECT');
    t.deepEqual(remote.status().counts, before, 'state kept while the remote hangs');
    process.kill(pid, 'SIGCONT');
    await waitFor(
      'resumed',
      () => remote.status().connections === 2 && remote.status().ready,
      20_000,
    );
    t.deepEqual(sink.take(), [], 'nothing changed on the remote: nothing emitted');
  },
);
