// Everything one agent watches, as Resources started and stopped together: the daemon's entry
// point to Kubernetes state.
import { Resource, type ResourceOptions } from './resource.ts';
import { agentResources } from './resources.ts';
import type { KubeApi, KubeObject, ResourceDef } from './types.ts';

type Defs = ReturnType<typeof agentResources>;
type ObjectOf<D> = D extends ResourceDef<infer T> ? T : never;
export type AgentResources = { readonly [K in keyof Defs]: Resource<ObjectOf<Defs[K]>> };

export class AgentWatches {
  readonly resources: AgentResources;

  constructor(api: KubeApi, nodeName: string, opts: ResourceOptions = {}) {
    const defs = agentResources(nodeName);
    const out: Record<string, Resource<KubeObject>> = {};
    for (const [name, def] of Object.entries(defs)) out[name] = new Resource(api, def, opts);
    this.resources = out as unknown as AgentResources;
  }

  start(): void {
    for (const r of this.all()) r.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.all().map((r) => r.stop()));
  }

  /** Resolves once every resource finished its initial list. */
  async synced(): Promise<void> {
    await Promise.all(this.all().map((r) => r.synced));
  }

  private all(): Resource<KubeObject>[] {
    return Object.values(this.resources) as Resource<KubeObject>[];
  }
}
