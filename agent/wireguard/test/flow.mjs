// Traffic helper for the WireGuard netns tests, run inside a namespace with nsenter:
//   sink PORT SECONDS        one TCP connection: prints {bytes, sha256, maxGapMs, error}
//   send HOST PORT FILE      sends a file over TCP
//   stream HOST PORT SECONDS a 64 KiB/s stream of 1 KiB writes every 15 ms; exit 1 on a reset
//   udp HOST PORT MARKER N   N UDP datagrams carrying MARKER (one every 10 ms)
//   udpsink PORT SECONDS [N] counts datagrams: prints {received, distinct} after SECONDS, or as
//                            soon as N distinct ones arrived
// Every mode is bounded in time.
import net from 'node:net';
import dgram from 'node:dgram';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';

const [mode, ...a] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

if (mode === 'sink') {
  const [port, seconds] = a.map(Number);
  const hash = createHash('sha256');
  let bytes = 0,
    last = 0,
    maxGapMs = 0;
  const srv = net.createServer((s) => {
    last = Date.now();
    s.on('data', (d) => {
      const now = Date.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
      bytes += d.length;
      hash.update(d);
    });
    s.on('error', (e) => {
      out({ bytes, sha256: hash.digest('hex'), maxGapMs, error: e.code });
      process.exit(0);
    });
    s.on('end', () => {
      out({ bytes, sha256: hash.digest('hex'), maxGapMs, error: null });
      process.exit(0);
    });
  });
  srv.listen(port, '0.0.0.0', () => out({ listening: port }));
  setTimeout(() => {
    out({ bytes, sha256: null, maxGapMs, error: 'timeout' });
    process.exit(2);
  }, seconds * 1000).unref();
} else if (mode === 'send') {
  const [host, port, file] = a;
  const s = net.connect(Number(port), host, () => createReadStream(file).pipe(s));
  s.on('error', (e) => {
    console.error(e.message);
    process.exit(1);
  });
  s.on('close', () => process.exit(0));
  setTimeout(() => process.exit(3), 120_000).unref();
} else if (mode === 'stream') {
  const [host, port, seconds] = [a[0], Number(a[1]), Number(a[2])];
  const chunk = Buffer.alloc(1024, 'x');
  const s = net.connect(port, host);
  s.on('error', (e) => {
    console.error(e.code);
    process.exit(1);
  });
  s.on('connect', () => {
    out({ connected: true });
    const t = setInterval(() => s.write(chunk), 15);
    setTimeout(() => {
      clearInterval(t);
      s.end();
    }, seconds * 1000);
  });
  s.on('close', (hadError) => process.exit(hadError ? 1 : 0));
  setTimeout(() => process.exit(4), (seconds + 60) * 1000).unref();
} else if (mode === 'udp') {
  const [host, port, marker, n] = [a[0], Number(a[1]), a[2], Number(a[3])];
  const s = dgram.createSocket('udp4');
  let i = 0;
  const t = setInterval(() => {
    s.send(Buffer.from(`${marker}-${i}`), port, host);
    if (++i >= n) {
      clearInterval(t);
      setTimeout(() => s.close(), 50);
    }
  }, 10);
} else if (mode === 'udpsink') {
  const [port, seconds, expected = Infinity] = a.map(Number);
  const s = dgram.createSocket('udp4');
  const seen = new Set();
  let received = 0;
  const report = () => {
    clearTimeout(timer);
    out({ received, distinct: seen.size });
    s.close();
  };
  s.on('message', (m) => {
    received++;
    seen.add(m.toString());
    if (seen.size >= expected) report();
  });
  s.bind(port, () => out({ listening: port }));
  const timer = setTimeout(report, seconds * 1000);
} else {
  console.error('unknown mode ' + mode);
  process.exit(64);
}
