import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Ipam } from './ipam.ts';

function tempFile(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'isthmus-ipam-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'ipam.json');
}

test('skips network, router and broadcast; same owner gets the same address', (t) => {
  const ipam = Ipam.open('10.1.2.0/24');
  t.is(ipam.routerIP, '10.1.2.1');
  const a = ipam.allocate('a');
  t.is(a, '10.1.2.2');
  t.is(ipam.allocate('a'), a);
  t.is(ipam.allocate('b'), '10.1.2.3');
});

test('exhaustion is a coded error; a freed address is reused only after the others', (t) => {
  const ipam = Ipam.open('10.1.2.0/29'); // hosts .2 .. .6
  const got = ['a', 'b', 'c', 'd', 'e'].map((o) => ipam.allocate(o));
  t.deepEqual(got, ['10.1.2.2', '10.1.2.3', '10.1.2.4', '10.1.2.5', '10.1.2.6']);
  t.throws(() => ipam.allocate('f'), { code: 'ISTHMUS_IPAM_EXHAUSTED' } as never);
  ipam.release('b');
  ipam.release('b');
  ipam.release('nobody');
  t.is(ipam.allocate('f'), '10.1.2.3');
});

test('allocations survive a restart through the state file', (t) => {
  const file = tempFile(t);
  const first = Ipam.open('10.1.2.0/24', file);
  first.allocate('a');
  first.allocate('b');
  first.release('a');
  const second = Ipam.open('10.1.2.0/24', file);
  t.deepEqual([...second.allocations()], [['10.1.2.3', 'b']]);
  t.is(
    second.allocate('c'),
    '10.1.2.4',
    'cursor persisted: a recently freed address is not reused first',
  );
});

test('a state file for another CIDR or a corrupt one is refused', (t) => {
  const file = tempFile(t);
  Ipam.open('10.1.2.0/24', file).allocate('a');
  t.throws(() => Ipam.open('10.1.3.0/24', file), {
    code: 'ISTHMUS_IPAM_BAD_STATE',
    message: /pod CIDR changed/,
  } as never);
  writeFileSync(file, '{');
  t.throws(() => Ipam.open('10.1.2.0/24', file), { code: 'ISTHMUS_IPAM_BAD_STATE' } as never);
  t.throws(() => Ipam.open('10.1.2.0/31'), { code: 'ISTHMUS_IPAM_BAD_CIDR' } as never);
});

test('property: addresses are unique, inside the CIDR and never reserved', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 20 })), { maxLength: 80 }),
      (ops) => {
        const ipam = Ipam.open('10.9.0.0/27');
        for (const [add, n] of ops) {
          if (add) {
            try {
              ipam.allocate(`o${n}`);
            } catch {
              /* exhaustion is allowed */
            }
          } else ipam.release(`o${n}`);
        }
        const ips = [...ipam.allocations().keys()];
        const owners = [...ipam.allocations().values()];
        if (new Set(owners).size !== owners.length) return false;
        return ips.every((ip) => {
          const last = Number(ip.split('.')[3]);
          return ip.startsWith('10.9.0.') && last >= 2 && last <= 30;
        });
      },
    ),
  );
  t.pass();
});
