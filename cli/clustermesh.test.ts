// `isthmus clustermesh status` text: withdrawn global-service backends per remote, and withdrawn
// clusters that are no longer remotes (drained after a disconnect).
import test from 'ava';
import { formatStatus, type NodeMeshStatus, type RemoteView } from './clustermesh.ts';

const remote = (cluster: string, withdrawn: boolean): RemoteView => ({
  cluster,
  clusterId: 2,
  state: withdrawn ? 'disconnected' : 'connected',
  connected: !withdrawn,
  reason: withdrawn ? 'mesh etcd unreachable' : '',
  synced: { identities: true, ipcache: true, nodes: true, services: true },
  ready: !withdrawn,
  counts: { identities: 1, endpoints: 2, nodes: 2, services: 1 },
  rejected: {},
  connections: 1,
  servicesWithdrawn: withdrawn,
});

const node = (remotes: RemoteView[], withdrawn: string[]): NodeMeshStatus => ({
  node: 'c1-node1',
  cluster: 'c1',
  configured: true,
  remotes,
  withdrawn,
});

test('status shows withdrawn service backends per remote and of drained clusters', (t) => {
  const text = formatStatus([node([remote('c2', true), remote('c3', false)], ['c2', 'c4'])]);
  const lines = text.split('\n');
  const c2 = lines.findIndex((l) => l.startsWith('  c2 '));
  const c3 = lines.findIndex((l) => l.startsWith('  c3 '));
  t.true(
    lines.slice(c2, c3).some((l) => /global services: backends WITHDRAWN/.test(l)),
    text,
  );
  t.false(
    lines.slice(c3).some((l) => /backends WITHDRAWN/.test(l)),
    text,
  );
  t.regex(text, /global-service backends withdrawn of disconnected: c4$/m);
  t.notRegex(formatStatus([node([remote('c3', false)], [])]), /withdrawn/i);
});
