// Selector cache: every selector in use -> the identities it selects, updated incrementally as
// identities come and go. Selectors are indexed by one `In` requirement so that a new identity is
// tested only against selectors that can match it.
import { CLUSTER_LABEL, NAMESPACE_LABEL, type SecurityLabels } from '../identity/types.ts';
import { matches } from './selector.ts';
import type { Selector } from './types.ts';

interface Slot {
  selector: Selector;
  ids: Set<number>;
  refs: number;
  buckets: string[];
}

/** Index buckets of a selector: the values of its `In` requirement with the fewest candidates. */
function bucketsOf(sel: Selector, size: (pair: string) => number): string[] {
  let best: string[] = [];
  let bestCount = Infinity;
  for (const r of sel.requirements) {
    if (r.operator !== 'In') continue;
    const pairs = r.values.map((v) => `${r.key}=${v}`);
    // fewest candidates; on a tie (e.g. no identities yet) avoid the coarse cluster/namespace keys
    const count =
      pairs.reduce((n, p) => n + size(p), 0) +
      (r.key === CLUSTER_LABEL ? 0.2 : r.key === NAMESPACE_LABEL ? 0.1 : 0);
    if (count < bestCount) {
      best = pairs;
      bestCount = count;
    }
  }
  return best;
}

export class SelectorCache {
  private readonly identities = new Map<number, SecurityLabels>();
  private readonly slots = new Map<string, Slot>();
  private readonly index = new Map<string, Set<Slot>>();
  private readonly unindexed = new Set<Slot>();
  /** key=value -> identities carrying it, so a new selector scans only its candidates */
  private readonly byLabel = new Map<string, Set<number>>();

  /** Takes a reference on the selector; returns the identities it selects now. */
  add(selector: Selector): ReadonlySet<number> {
    const existing = this.slots.get(selector.key);
    if (existing) {
      existing.refs++;
      return existing.ids;
    }
    const slot: Slot = {
      selector,
      ids: new Set(),
      refs: 1,
      buckets: bucketsOf(selector, (p) => this.byLabel.get(p)?.size ?? 0),
    };
    // candidates: identities carrying one of the bucket's key=value pairs, or all without a bucket
    const candidates =
      slot.buckets.length === 0
        ? [this.identities.keys()]
        : slot.buckets.map((b) => this.byLabel.get(b)?.values() ?? []);
    for (const list of candidates) {
      for (const id of list) if (matches(selector, this.identities.get(id)!)) slot.ids.add(id);
    }
    this.slots.set(selector.key, slot);
    if (slot.buckets.length === 0) this.unindexed.add(slot);
    for (const b of slot.buckets) {
      let set = this.index.get(b);
      if (!set) this.index.set(b, (set = new Set()));
      set.add(slot);
    }
    return slot.ids;
  }

  release(key: string): void {
    const slot = this.slots.get(key);
    if (!slot || --slot.refs > 0) return;
    this.slots.delete(key);
    this.unindexed.delete(slot);
    for (const b of slot.buckets) this.index.get(b)?.delete(slot);
  }

  selected(key: string): ReadonlySet<number> {
    return this.slots.get(key)?.ids ?? EMPTY;
  }

  labelsOf(id: number): SecurityLabels | undefined {
    return this.identities.get(id);
  }

  identityIds(): IterableIterator<number> {
    return this.identities.keys();
  }

  /** Adds an identity; returns the keys of selectors that now select it. */
  upsertIdentity(id: number, labels: SecurityLabels): string[] {
    // a relabelled identity leaves the selectors it matched before: report those too
    const changed: string[] = this.identities.has(id) ? this.removeIdentity(id) : [];
    this.identities.set(id, labels);
    for (const [k, v] of labels) {
      const pair = `${k}=${v}`;
      let set = this.byLabel.get(pair);
      if (!set) this.byLabel.set(pair, (set = new Set()));
      set.add(id);
    }
    const visit = (slot: Slot) => {
      if (matches(slot.selector, labels)) {
        slot.ids.add(id);
        changed.push(slot.selector.key); // duplicates are harmless: callers take the union
      }
    };
    for (const [k, v] of labels) this.index.get(`${k}=${v}`)?.forEach(visit);
    this.unindexed.forEach(visit);
    return changed;
  }

  /** Removes an identity; returns the keys of selectors that selected it. */
  removeIdentity(id: number): string[] {
    const labels = this.identities.get(id);
    if (!labels) return [];
    this.identities.delete(id);
    for (const [k, v] of labels) {
      const pair = `${k}=${v}`;
      const set = this.byLabel.get(pair);
      if (set?.delete(id) && set.size === 0) this.byLabel.delete(pair);
    }
    const changed: string[] = [];
    const visit = (slot: Slot) => {
      if (slot.ids.delete(id)) changed.push(slot.selector.key);
    };
    for (const [k, v] of labels) this.index.get(`${k}=${v}`)?.forEach(visit);
    this.unindexed.forEach(visit);
    return changed;
  }
}

const EMPTY: ReadonlySet<number> = new Set();
