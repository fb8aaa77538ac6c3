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

/** Index bucket of a selector: the `In` requirement on the most selective key. */
function bucketsOf(sel: Selector): string[] {
  const rank = (key: string) => (key === CLUSTER_LABEL ? 2 : key === NAMESPACE_LABEL ? 1 : 0);
  const ins = sel.requirements
    .filter((r) => r.operator === 'In')
    .sort((a, b) => rank(a.key) - rank(b.key) || a.values.length - b.values.length);
  const best = ins[0];
  return best ? best.values.map((v) => `${best.key}=${v}`) : [];
}

export class SelectorCache {
  private readonly identities = new Map<number, SecurityLabels>();
  private readonly slots = new Map<string, Slot>();
  private readonly index = new Map<string, Set<Slot>>();
  private readonly unindexed = new Set<Slot>();

  /** Takes a reference on the selector; returns the identities it selects now. */
  add(selector: Selector): ReadonlySet<number> {
    const existing = this.slots.get(selector.key);
    if (existing) {
      existing.refs++;
      return existing.ids;
    }
    const slot: Slot = { selector, ids: new Set(), refs: 1, buckets: bucketsOf(selector) };
    for (const [id, labels] of this.identities) if (matches(selector, labels)) slot.ids.add(id);
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
