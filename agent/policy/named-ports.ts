// Named ports of every pod in the mesh, by identity: egress rules naming a port resolve against
// the destination's ports, over every pod known with that identity (as Cilium does).
import type { NamedPort } from './types.ts';

export class NamedPortIndex {
  private readonly byIdentity = new Map<number, Map<string, readonly NamedPort[]>>();
  private readonly identityOfPod = new Map<string, number>();

  /** Sets (or with `undefined`, clears) a pod's ports; returns the identities whose ports changed. */
  set(pod: string, identity: number, ports: readonly NamedPort[] | undefined): number[] {
    const changed = new Set<number>();
    const old = this.identityOfPod.get(pod);
    if (old !== undefined) {
      const pods = this.byIdentity.get(old);
      if (pods?.delete(pod)) changed.add(old);
      if (pods?.size === 0) this.byIdentity.delete(old);
      this.identityOfPod.delete(pod);
    }
    if (ports && ports.length > 0) {
      let pods = this.byIdentity.get(identity);
      if (!pods) this.byIdentity.set(identity, (pods = new Map()));
      pods.set(pod, ports);
      this.identityOfPod.set(pod, identity);
      changed.add(identity);
    }
    return [...changed];
  }

  /** Ports named `name` on any pod with this identity, or on any pod at all. */
  lookup(identity: number | 'all', name: string): NamedPort[] {
    const out: NamedPort[] = [];
    const visit = (pods: Map<string, readonly NamedPort[]>) => {
      for (const ports of pods.values()) for (const p of ports) if (p.name === name) out.push(p);
    };
    if (identity === 'all') this.byIdentity.forEach(visit);
    else {
      const pods = this.byIdentity.get(identity);
      if (pods) visit(pods);
    }
    return out;
  }
}
