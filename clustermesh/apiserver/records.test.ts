// Node records mirror the WireGuard annotations the agent publishes (agent/wireguard/annotations.ts).
import test from 'ava';
import {
  WG_KEY_ANNOTATION,
  WG_NEXT_KEY_ANNOTATION,
  WG_NEXT_PORT_ANNOTATION,
  WG_PORT_ANNOTATION,
} from '../../agent/wireguard/annotations.ts';
import type { Node } from '../../agent/k8s/index.ts';
import { decodeNode, type NodeRecord } from '../kvstore/index.ts';
import { nodeEntry } from './records.ts';
import { CLUSTER, nodeStatus, wgKey } from './test-objects.ts';

const nodeWith = (annotations: Record<string, string>): Node => ({
  metadata: { name: 'n1', annotations },
  spec: { podCIDR: '10.1.1.0/24', podCIDRs: ['10.1.1.0/24'] },
  status: nodeStatus('172.30.0.11'),
});

function recordOf(annotations: Record<string, string>): NodeRecord {
  const entry = nodeEntry(CLUSTER, nodeWith(annotations));
  const r = decodeNode(entry.value);
  if (!r.ok) throw new Error(r.error.detail);
  return r.value;
}

test('a rotating node carries both keys and their ports into its record', (t) => {
  const r = recordOf({
    [WG_KEY_ANNOTATION]: wgKey(1),
    [WG_PORT_ANNOTATION]: '51871',
    [WG_NEXT_KEY_ANNOTATION]: wgKey(2),
    [WG_NEXT_PORT_ANNOTATION]: '51872',
  });
  t.like(r, {
    WireguardPubKey: wgKey(1),
    WireguardPort: 51871,
    WireguardPubKeyNext: wgKey(2),
    WireguardPortNext: 51872,
  });
});

test('after the flip only the current key and port remain', (t) => {
  const r = recordOf({ [WG_KEY_ANNOTATION]: wgKey(2), [WG_PORT_ANNOTATION]: '51872' });
  t.is(r.WireguardPubKey, wgKey(2));
  t.is(r.WireguardPort, 51872);
  t.false('WireguardPubKeyNext' in r || 'WireguardPortNext' in r);
});

test('malformed keys and ports are left out, so readers never refuse the whole record', (t) => {
  const bad = recordOf({
    [WG_KEY_ANNOTATION]: wgKey(1),
    [WG_PORT_ANNOTATION]: '70000',
    [WG_NEXT_KEY_ANNOTATION]: 'not-a-key',
    [WG_NEXT_PORT_ANNOTATION]: '51872',
  });
  t.is(bad.WireguardPubKey, wgKey(1));
  t.false('WireguardPort' in bad, 'port out of range');
  t.false('WireguardPubKeyNext' in bad || 'WireguardPortNext' in bad, 'bad next key');
  const noKey = recordOf({ [WG_NEXT_KEY_ANNOTATION]: wgKey(2), [WG_PORT_ANNOTATION]: '51871' });
  t.is(noKey.WireguardPubKey, '');
  t.false('WireguardPubKeyNext' in noKey || 'WireguardPort' in noKey, 'nothing without a key');
});
