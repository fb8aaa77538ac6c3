// Map updates per second through the native addon: one call per update vs one call per batch,
// raw Buffers vs the typed wrappers. Maps are created unpinned and vanish with the process.
// Run: node --import tsx bench/datapath/map-updates.ts [entries=50000 (endpoints map holds 65536)] [repeats=5]
import { nativeAddon } from '../../agent/native/index.ts';
import { openDatapath } from '../../agent/datapath/datapath.ts';
import { policyCodec, type PolicyKey } from '../../agent/datapath/policy-map.ts';
import { Protocol } from '../../agent/policy/entry.ts';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const entries = Number(process.argv[2] ?? 50_000);
const repeats = Number(process.argv[3] ?? 5);

interface Case {
  name: string;
  run(): void;
}

function main(): void {
  const addon = nativeAddon();
  // A private bpffs, so nothing lands in /sys/fs/bpf; unmounted (maps freed) at the end.
  const pinRoot = `/run/isthmus-bench-${randomBytes(3).toString('hex')}`;
  mkdirSync(pinRoot);
  const mounted = spawnSync('mount', ['-t', 'bpf', 'bpf', pinRoot]);
  if (mounted.status !== 0) throw new Error(`mount bpffs on ${pinRoot} failed (run as root)`);
  let dp: ReturnType<typeof openDatapath> | undefined;
  try {
    dp = openDatapath({ pinRoot });
    const cases = buildCases(addon, dp);
    const rates = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    for (let r = 0; r < repeats; r++) {
      for (const c of cases) {
        const start = process.hrtime.bigint();
        c.run();
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        rates.get(c.name)!.push(entries / seconds);
      }
    }
    console.log(
      `map updates per second, ${entries} entries, median of ${repeats} interleaved repeats`,
    );
    for (const [name, rs] of rates)
      console.log(
        `  ${name.padEnd(44)} ${Math.round(median(rs)).toLocaleString('en-US').padStart(12)}/s`,
      );
  } finally {
    dp?.close();
    spawnSync('umount', [pinRoot]);
    rmdirSync(pinRoot);
  }
}

function buildCases(
  addon: ReturnType<typeof nativeAddon>,
  dp: ReturnType<typeof openDatapath>,
): Case[] {
  const endpointsFd = dp.endpoints.fd;
  const policyFd = dp.policy.fd;
  const epKeys = Buffer.alloc(20 * entries);
  const epValues = Buffer.alloc(16 * entries);
  for (let i = 0; i < entries; i++) {
    epKeys.writeUInt8(2, i * 20);
    epKeys.writeUInt32BE(0x0a000000 + i, i * 20 + 4);
    epValues.writeUInt32LE(i, i * 16);
  }
  const policyKeys: PolicyKey[] = [];
  for (let i = 0; i < entries; i++)
    policyKeys.push({
      endpointId: i % 500,
      direction: 'ingress',
      peer: 1000 + i,
      protocol: Protocol.TCP,
      port: 80,
      portPrefixLen: 16,
    });
  const polKeys = Buffer.alloc(16 * entries);
  const polValues = Buffer.alloc(4 * entries);
  policyKeys.forEach((k, i) => policyCodec.encodeKey(k, polKeys.subarray(i * 16, i * 16 + 16)));
  const typedPolicy = policyKeys.map((k) => [k, { deny: false }] as const);
  return [
    {
      name: 'hash (endpoints), single, raw',
      run: () => {
        for (let i = 0; i < entries; i++)
          addon.mapUpdate(
            endpointsFd,
            epKeys.subarray(i * 20, i * 20 + 20),
            epValues.subarray(i * 16, i * 16 + 16),
          );
      },
    },
    {
      name: 'hash (endpoints), batched, raw',
      run: () => void addon.mapUpdateBatch(endpointsFd, epKeys, epValues, entries),
    },
    {
      name: 'LPM (policy), single, raw',
      run: () => {
        for (let i = 0; i < entries; i++)
          addon.mapUpdate(
            policyFd,
            polKeys.subarray(i * 16, i * 16 + 16),
            polValues.subarray(i * 4, i * 4 + 4),
          );
      },
    },
    {
      name: 'LPM (policy), batched, raw',
      run: () => void addon.mapUpdateBatch(policyFd, polKeys, polValues, entries),
    },
    {
      name: 'LPM (policy), single, typed PolicyMap.set',
      run: () => {
        for (const [k, v] of typedPolicy) dp.policy.set(k, v);
      },
    },
    {
      name: 'LPM (policy), batched, typed PolicyMap.setMany',
      run: () => void dp.policy.setMany(typedPolicy),
    },
  ];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

main();
