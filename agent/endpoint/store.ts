// Persisted endpoints of one node: a JSON file in the node's state dir, rewritten atomically on
// every change, so a restarted agent restores them.
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from './ipam.ts';
import type { EndpointInfo } from './types.ts';

const MAX_ENDPOINT_ID = 65535;

export class EndpointStore {
  private readonly byContainer = new Map<string, EndpointInfo>();

  constructor(private readonly file: string | undefined) {
    if (!file) return;
    let raw: string;
    try {
      raw = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw Object.assign(new Error(`cannot read endpoint state ${file}`, { cause: err }), {
        code: 'ISTHMUS_ENDPOINT_STATE',
      });
    }
    for (const ep of JSON.parse(raw) as EndpointInfo[])
      this.byContainer.set(key(ep.containerId, ep.podIfname), ep);
  }

  get(containerId: string, ifname: string): EndpointInfo | undefined {
    return this.byContainer.get(key(containerId, ifname));
  }

  all(): EndpointInfo[] {
    return [...this.byContainer.values()];
  }

  put(ep: EndpointInfo): void {
    this.byContainer.set(key(ep.containerId, ep.podIfname), ep);
    this.save();
  }

  remove(containerId: string, ifname: string): void {
    if (this.byContainer.delete(key(containerId, ifname))) this.save();
  }

  /** Lowest endpoint id not in use. */
  nextId(): number {
    const used = new Set(this.all().map((ep) => ep.id));
    for (let id = 1; id <= MAX_ENDPOINT_ID; id++) if (!used.has(id)) return id;
    throw Object.assign(new Error(`all ${MAX_ENDPOINT_ID} endpoint ids are in use on this node`), {
      code: 'ISTHMUS_ENDPOINT_IDS_EXHAUSTED',
    });
  }

  private save(): void {
    if (this.file) writeFileAtomic(this.file, JSON.stringify(this.all(), null, 1));
  }
}

/** IPAM owner and store key of one attachment: a container may have several interfaces. */
export const key = (containerId: string, ifname: string): string => `${containerId}/${ifname}`;
