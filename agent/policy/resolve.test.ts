// The entries the engine emits, run through the datapath lookup model, must give exactly the
// rule semantics: deny over allow, any allow passes, otherwise no match.
import test from 'ava';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { ANY_PEER, PREFIX_CLASS_BASE, Protocol, type ProtocolNumber } from './entry.ts';
import { PolicyLookup } from './lookup.ts';
import { normalize, subtract, toPortPrefixes } from './ports.ts';
import { flattenCidrs, peerEntries, type Contribution } from './resolve.ts';
import type { PolicyRule } from './types.ts';

const ref = { policy: 'p', path: 'spec' };
const protoArb = fc.constantFrom<ProtocolNumber>(
  Protocol.ANY,
  Protocol.TCP,
  Protocol.UDP,
  Protocol.SCTP,
);
const contribArb = fc
  .record({
    protocol: protoArb,
    a: fc.integer({ min: 0, max: 65535 }),
    b: fc.integer({ min: 0, max: 65535 }),
    deny: fc.boolean(),
    all: fc.boolean(),
  })
  .map(({ protocol, a, b, deny, all }): Contribution =>
    all && protocol === Protocol.ANY
      ? { protocol, lo: 0, hi: 65535, deny, ref }
      : { protocol, lo: Math.min(a, b), hi: Math.max(a, b), deny, ref },
  );

test('port prefixes cover an interval exactly, without overlap', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b) => {
      const iv = { lo: Math.min(a, b), hi: Math.max(a, b) };
      let next = iv.lo;
      for (const p of toPortPrefixes(iv)) {
        if (p.port !== next || p.port % (1 << (16 - p.prefixLen)) !== 0) return false;
        next = p.port + (1 << (16 - p.prefixLen));
      }
      return next === iv.hi + 1;
    }),
  );
  t.deepEqual(toPortPrefixes({ lo: 0, hi: 65535 }), [{ port: 0, prefixLen: 0 }]);
  t.deepEqual(toPortPrefixes({ lo: 8080, hi: 8090 }), [
    { port: 8080, prefixLen: 13 },
    { port: 8088, prefixLen: 15 },
    { port: 8090, prefixLen: 16 },
  ]);
});

test('interval subtraction and merging', (t) => {
  t.deepEqual(
    normalize([
      { lo: 5, hi: 9 },
      { lo: 1, hi: 3 },
      { lo: 4, hi: 4 },
    ]),
    [{ lo: 1, hi: 9 }],
  );
  t.deepEqual(
    subtract(
      [{ lo: 1, hi: 100 }],
      [
        { lo: 10, hi: 20 },
        { lo: 50, hi: 200 },
      ],
    ),
    [
      { lo: 1, hi: 9 },
      { lo: 21, hi: 49 },
    ],
  );
});

test('LPM over emitted entries equals deny-over-allow over the rules, for every probe', (t) => {
  fc.assert(
    fc.property(
      fc.array(contribArb, { minLength: 1, maxLength: 6 }),
      fc.array(
        fc.tuple(
          fc.constantFrom(Protocol.TCP, Protocol.UDP, Protocol.SCTP),
          fc.integer({ min: 0, max: 65535 }),
        ),
        { minLength: 20, maxLength: 40 },
      ),
      (contribs, probes) => {
        const peer = 70000;
        const lookup = new PolicyLookup({
          ingressEnforced: true,
          egressEnforced: true,
          entries: peerEntries('ingress', peer, contribs),
          prefixes: [],
        });
        for (const [proto, port] of probes) {
          const covers = (c: Contribution) =>
            (c.protocol === Protocol.ANY || c.protocol === proto) && port >= c.lo && port <= c.hi;
          const want = contribs.some((c) => c.deny && covers(c))
            ? 'deny'
            : contribs.some((c) => !c.deny && covers(c))
              ? 'allow'
              : 'none';
          const v = lookup.decide('ingress', peer, undefined, proto, port);
          const got = v.matches.length === 0 ? 'none' : v.allowed ? 'allow' : 'deny';
          if (got !== want) return false;
        }
        return true;
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

const cidrArb = fc
  .tuple(
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 8, max: 28 }),
  )
  .map(
    ([a, b, bits]) =>
      ipaddr.IPv4.networkAddressFromCIDR(`10.${a}.${b}.0/${bits}`).toString() + `/${bits}`,
  );
const cidrRuleArb = fc
  .tuple(
    cidrArb,
    fc.array(fc.integer({ min: 1, max: 8 }), { maxLength: 2 }),
    fc.array(fc.nat(), { maxLength: 2 }),
  )
  .map(([cidr, extra, seeds]) => {
    const [net, bits] = cidr.split('/') as [string, string];
    const base = ipaddr.parse(net).toByteArray();
    const except = extra.map((e, i) => {
      const eb = Math.min(32, Number(bits) + e);
      const bytes = [...base];
      const n = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
      const hostBits = 32 - Number(bits);
      const offset = hostBits === 0 ? 0 : ((seeds[i] ?? 0) * 2654435761) % 2 ** hostBits;
      const addr = (n + offset) >>> 0;
      const ip = [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
      return ipaddr.IPv4.networkAddressFromCIDR(`${ip}/${eb}`).toString() + `/${eb}`;
    });
    return { cidr, except: except.filter((e) => e !== cidr) };
  });

test('flattened prefixes: the longest match yields exactly the rules covering an address', (t) => {
  fc.assert(
    fc.property(
      fc.array(cidrRuleArb, { minLength: 1, maxLength: 4 }),
      fc.array(
        fc.tuple(
          fc.integer({ min: 0, max: 255 }),
          fc.integer({ min: 0, max: 255 }),
          fc.integer({ min: 0, max: 255 }),
        ),
        { minLength: 10, maxLength: 30 },
      ),
      (specs, addrs) => {
        const rules = specs.map((s, i) => ({
          rule: {
            ref: { policy: `r${i}`, path: '' },
            direction: 'egress',
            deny: false,
            peers: [],
            ports: [],
          } as PolicyRule,
          ...s,
        }));
        const flat = flattenCidrs('egress', rules);
        const inside = (ip: string, c: string) => ipaddr.parse(ip).match(ipaddr.parseCIDR(c));
        // probe addresses: random ones plus the network address of every prefix
        const ips = [
          ...addrs.map(([a, b, c]) => `10.${a}.${b}.${c}`),
          ...flat.prefixes.map((p) => p.cidr.split('/')[0]!),
        ];
        for (const ip of ips) {
          const want = rules
            .filter((r) => inside(ip, r.cidr) && !r.except.some((e) => inside(ip, e)))
            .map((r) => r.rule.ref.policy)
            .sort();
          const best = flat.prefixes
            .filter((p) => inside(ip, p.cidr))
            .sort((a, b) => Number(b.cidr.split('/')[1]) - Number(a.cidr.split('/')[1]))[0];
          const got = best
            ? flat.classes
                .find((c) => c.classId === best.classId)!
                .rules.map((r) => r.rule.ref.policy)
                .sort()
            : [];
          if (JSON.stringify(got) !== JSON.stringify(want)) return false;
        }
        return flat.prefixes.every((p) => p.classId >= PREFIX_CLASS_BASE);
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('a wildcard allow with a denied port keeps the port denied for concrete protocols only', (t) => {
  const entries = peerEntries('egress', ANY_PEER, [
    { protocol: Protocol.ANY, lo: 0, hi: 65535, deny: false, ref },
    { protocol: Protocol.TCP, lo: 80, hi: 80, deny: true, ref },
  ]);
  t.deepEqual(entries, [
    {
      direction: 'egress',
      peer: 0,
      protocol: Protocol.ANY,
      port: 0,
      portPrefixLen: 0,
      deny: false,
    },
    {
      direction: 'egress',
      peer: 0,
      protocol: Protocol.TCP,
      port: 80,
      portPrefixLen: 16,
      deny: true,
    },
  ]);
});

test('the contract check catches entries the datapath cannot hold', async (t) => {
  const { contractViolations } = await import('./contract.ts');
  const bad = contractViolations({
    ingressEnforced: true,
    egressEnforced: false,
    entries: [
      {
        direction: 'ingress',
        peer: 5,
        protocol: Protocol.ANY,
        port: 80,
        portPrefixLen: 16,
        deny: false,
      },
      {
        direction: 'ingress',
        peer: 5,
        protocol: Protocol.TCP,
        port: 81,
        portPrefixLen: 15,
        deny: false,
      },
      {
        direction: 'ingress',
        peer: PREFIX_CLASS_BASE + 9,
        protocol: Protocol.TCP,
        port: 80,
        portPrefixLen: 16,
        deny: false,
      },
    ],
    prefixes: [{ direction: 'ingress', cidr: '10.0.0.1/8', classId: 3 }],
  });
  t.is(bad.length, 5);
});
