import test from 'ava';
import fc from 'fast-check';
import { MeshTable } from './mesh-view.ts';
import { parseAddr, parsePrefix, prefixContains, sameAddr } from './prefixes.ts';

const LOCAL = { name: 'c1', id: 1 };

/** The scan the index replaces: every node of the cluster, one by one. */
function scanInPodCidr(mesh: MeshTable, cluster: string, prefixText: string): boolean {
  const p = parsePrefix(prefixText)!;
  return [...mesh.nodesOf(cluster)].some((n) =>
    n.podCidrs.some((c) => {
      const q = parsePrefix(c)!;
      return prefixContains(q, p.addr) && q.len <= p.len;
    }),
  );
}

function scanNodeIp(mesh: MeshTable, cluster: string, ip: string): boolean {
  const a = parseAddr(ip)!;
  return [...mesh.nodesOf(cluster)].some((n) => n.ips.some((b) => sameAddr(parseAddr(b)!, a)));
}

const octet = fc.integer({ min: 0, max: 3 });
const ipv4 = fc.tuple(octet, octet, octet).map(([b, c, d]) => `10.${b}.${c}.${d}`);
const cidr = fc.tuple(ipv4, fc.constantFrom(8, 16, 24, 30, 32)).map(([ip, len]) => `${ip}/${len}`);
const op = fc.oneof(
  fc.record({
    kind: fc.constant('upsert' as const),
    cluster: fc.constantFrom('c2', 'c3'),
    name: fc.constantFrom('a', 'b', 'c'),
    podCidrs: fc.array(cidr, { maxLength: 2 }),
    ips: fc.array(
      fc.oneof(
        ipv4,
        ipv4.map((ip) => `::ffff:${ip}`),
      ),
      { maxLength: 2 },
    ),
  }),
  fc.record({
    kind: fc.constant('remove' as const),
    cluster: fc.constantFrom('c2', 'c3'),
    name: fc.constantFrom('a', 'b', 'c'),
  }),
  fc.record({ kind: fc.constant('drop' as const), cluster: fc.constantFrom('c2', 'c3') }),
);

test('the node index answers as a scan of the nodes does, after any history', (t) => {
  fc.assert(
    fc.property(
      fc.array(op, { maxLength: 12 }),
      fc.array(cidr, { minLength: 5, maxLength: 5 }),
      (ops, probes) => {
        const mesh = new MeshTable(LOCAL);
        for (const o of ops) {
          if (o.kind === 'upsert') mesh.upsertNode(o);
          else if (o.kind === 'remove') mesh.removeNode(o.cluster, o.name);
          else mesh.removeCluster(o.cluster);
        }
        for (const cluster of ['c2', 'c3'])
          for (const p of probes) {
            if (mesh.inPodCidrOf(cluster, parsePrefix(p)!) !== scanInPodCidr(mesh, cluster, p))
              return false;
            const ip = p.slice(0, p.indexOf('/'));
            for (const spelled of [ip, `::ffff:${ip}`])
              if (mesh.isNodeIpOf(cluster, spelled) !== scanNodeIp(mesh, cluster, spelled))
                return false;
          }
        return true;
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

test('a pod CIDR with host bits set still contains its addresses; a wider prefix is not inside', (t) => {
  const mesh = new MeshTable(LOCAL);
  mesh.upsertNode({ cluster: 'c2', name: 'n1', podCidrs: ['10.2.1.77/24'], ips: ['172.18.0.5'] });
  t.true(mesh.inPodCidrOf('c2', parsePrefix('10.2.1.9')!));
  t.true(mesh.inPodCidrOf('c2', parsePrefix('10.2.1.128/25')!));
  t.false(mesh.inPodCidrOf('c2', parsePrefix('10.2.0.0/16')!));
  t.false(mesh.inPodCidrOf('c3', parsePrefix('10.2.1.9')!));
  t.true(mesh.isNodeIpOf('c2', '::ffff:172.18.0.5'));
  mesh.upsertNode({ cluster: 'c2', name: 'n1', podCidrs: ['10.2.2.0/24'], ips: ['172.18.0.6'] });
  t.false(mesh.inPodCidrOf('c2', parsePrefix('10.2.1.9')!), 'the replaced CIDR is gone');
  t.false(mesh.isNodeIpOf('c2', '172.18.0.5'));
});
