// Pod-side traffic for the encryption tests, run inside a pod's namespace (nsenter --net).
// Every mode is bounded in time and prints one JSON line.
//   sink PORT SECONDS            TCP server: answers each stream with its byte count + sha256
//   send IP PORT BYTES           sends BYTES of seeded data, half-closes, compares the answer
//   marker IP TCPPORT UDPPORT MARKER COUNT   marker payloads to a pod's echo server
//   probes IP PORT MS EVERY      short TCP exchanges against an echo server, counts failures
//   stream IP PORT MS EVERY      one long TCP connection to an echo server: gaps, errors
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, createServer } from 'node:net';

const [mode, ...a] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function chunkOf(i) {
  const b = Buffer.alloc(65536);
  for (let j = 0; j < b.length; j += 4) b.writeUInt32LE((i * 2654435761 + j) >>> 0, j);
  return b;
}

if (mode === 'sink') {
  const server = createServer((s) => {
    const h = createHash('sha256');
    let n = 0;
    s.on('data', (d) => (h.update(d), (n += d.length)));
    s.on('end', () => s.end(JSON.stringify({ bytes: n, sha256: h.digest('hex') }) + '\n'));
    s.on('error', () => {});
  });
  server.listen(Number(a[0]), () => out({ ready: true }));
  setTimeout(() => process.exit(0), Number(a[1]) * 1000).unref();
} else if (mode === 'send') {
  const [ip, port, total] = [a[0], Number(a[1]), Number(a[2])];
  const h = createHash('sha256');
  const s = connect(port, ip);
  const started = Date.now();
  let answer = '';
  s.setEncoding('utf8');
  s.on('data', (d) => (answer += d));
  s.on('error', (e) => (out({ error: e.code ?? String(e) }), process.exit(1)));
  s.on('end', () => {
    const got = JSON.parse(answer);
    out({ sent: total, sha256: h.digest('hex'), got, ms: Date.now() - started });
    process.exit(0);
  });
  s.on('connect', async () => {
    for (let i = 0, left = total; left > 0; i++) {
      const c = chunkOf(i).subarray(0, Math.min(65536, left));
      h.update(c);
      left -= c.length;
      if (!s.write(c)) await new Promise((r) => s.once('drain', r));
    }
    s.end();
  });
  setTimeout(() => (out({ error: 'timeout' }), process.exit(1)), 240_000).unref();
} else if (mode === 'marker') {
  const [ip, tcp, udp, marker, count] = [a[0], Number(a[1]), Number(a[2]), a[3], Number(a[4])];
  let tcpEchoed = 0;
  let udpEchoed = 0;
  for (let i = 0; i < count; i++) {
    tcpEchoed += await new Promise((resolve) => {
      const s = connect(tcp, ip, () => s.write(`${marker}-tcp-${i}`));
      s.setTimeout(3000, () => (s.destroy(), resolve(0)));
      s.on('data', (d) => (s.destroy(), resolve(d.includes(marker) ? 1 : 0)));
      s.on('error', () => resolve(0));
    });
    udpEchoed += await new Promise((resolve) => {
      const u = createSocket('udp4');
      const t = setTimeout(() => (u.close(), resolve(0)), 3000);
      u.on('message', (m) => (clearTimeout(t), u.close(), resolve(m.includes(marker) ? 1 : 0)));
      u.send(`${marker}-udp-${i}`, udp, ip);
    });
  }
  out({ tcpEchoed, udpEchoed });
} else if (mode === 'probes') {
  const [ip, port, ms, every] = [a[0], Number(a[1]), Number(a[2]), Number(a[3])];
  const until = Date.now() + ms;
  let ok = 0;
  const failed = [];
  while (Date.now() < until) {
    const t0 = Date.now();
    const good = await new Promise((resolve) => {
      const s = connect(port, ip, () => s.write('probe'));
      s.setTimeout(5000, () => (s.destroy(), resolve('timeout')));
      s.on('data', () => (s.destroy(), resolve(true)));
      s.on('error', (e) => resolve(e.code ?? 'error'));
    });
    if (good === true) ok++;
    else failed.push({ at: t0, reason: good });
    await sleep(Math.max(0, every - (Date.now() - t0)));
  }
  out({ ok, failed });
} else if (mode === 'stream') {
  const [ip, port, ms, every] = [a[0], Number(a[1]), Number(a[2]), Number(a[3])];
  const s = connect(port, ip);
  let sent = 0;
  let received = 0;
  let last = Date.now();
  let maxGapMs = 0;
  let error = null;
  s.on('data', (d) => {
    const now = Date.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    received += d.length;
  });
  s.on('error', (e) => (error = e.code ?? String(e)));
  s.on('connect', async () => {
    const until = Date.now() + ms;
    last = Date.now();
    while (Date.now() < until && !error) {
      s.write('x'.repeat(100));
      sent += 100;
      await sleep(every);
    }
    await sleep(3000);
    out({ sent, received, maxGapMs, error });
    s.destroy();
    process.exit(0);
  });
  setTimeout(
    () => (out({ sent, received, maxGapMs, error: error ?? 'timeout' }), process.exit(1)),
    ms + 30_000,
  ).unref();
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
