// The lab's tiny scheduler: a pod without spec.nodeName goes to the node of its cluster that
// holds the fewest pods (ties: the first by name), so pods spread evenly.

/** Picks a node for a new pod given how many pods each node holds. */
export function chooseNode(
  nodes: readonly string[],
  podsPerNode: ReadonlyMap<string, number>,
): string {
  const [first, ...rest] = [...nodes].sort();
  if (first === undefined) throw new Error('the cluster has no node to schedule a pod on');
  let best = first;
  for (const n of rest) if ((podsPerNode.get(n) ?? 0) < (podsPerNode.get(best) ?? 0)) best = n;
  return best;
}

/** Pods per node from the pods' spec.nodeName (unscheduled pods count nowhere). */
export function countPods(pods: Iterable<{ spec?: { nodeName?: string } }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const p of pods) {
    const node = p.spec?.nodeName;
    if (node) counts.set(node, (counts.get(node) ?? 0) + 1);
  }
  return counts;
}
