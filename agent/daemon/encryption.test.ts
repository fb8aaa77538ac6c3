import test from 'ava';
import {
  WG_KEY_ANNOTATION,
  WG_NEXT_KEY_ANNOTATION,
  WG_NEXT_PORT_ANNOTATION,
  WG_PORT_ANNOTATION,
  wgNodeOf,
} from './encryption.ts';

const KEY = 'A'.repeat(43) + '=';
const NEXT = 'B'.repeat(43) + '=';
const node = (annotations: Record<string, string>, podCIDR = '10.1.2.0/24') => ({
  metadata: { name: 'n2', annotations },
  spec: { podCIDR },
  status: { addresses: [{ type: 'InternalIP', address: '172.30.0.4' }] },
});

test('a Node with its annotations becomes a WireGuard table row named <cluster>/<node>', (t) => {
  const rows = wgNodeOf(
    'c1',
    node({
      [WG_KEY_ANNOTATION]: KEY,
      [WG_PORT_ANNOTATION]: '51872',
      [WG_NEXT_KEY_ANNOTATION]: NEXT,
      [WG_NEXT_PORT_ANNOTATION]: '51871',
    }),
  );
  t.deepEqual(rows, [
    {
      name: 'c1/n2',
      nodeIP: '172.30.0.4',
      podCIDRs: ['10.1.2.0/24'],
      podIPs: [],
      publicKey: KEY,
      port: 51872,
      nextPublicKey: NEXT,
      nextPort: 51871,
    },
  ]);
});

test('a Node without a key is a row without a peer; without an address or CIDR none', (t) => {
  t.deepEqual(wgNodeOf('c1', node({ [WG_PORT_ANNOTATION]: 'x' })), [
    { name: 'c1/n2', nodeIP: '172.30.0.4', podCIDRs: ['10.1.2.0/24'], podIPs: [] },
  ]);
  t.deepEqual(wgNodeOf('c1', { metadata: { name: 'n3' } }), []);
});
