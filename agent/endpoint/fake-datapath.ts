// In-memory EndpointDatapath: records what is attached, for tests and until the real datapath
// (agent/datapath) is wired in. Can be told to fail to exercise the manager's rollback.
import type { EndpointDatapath, EndpointInfo } from './types.ts';

export class FakeEndpointDatapath implements EndpointDatapath {
  readonly attached = new Map<number, EndpointInfo>();
  attachCalls = 0;
  failAttach: Error | undefined;

  async attach(ep: EndpointInfo): Promise<void> {
    this.attachCalls++;
    if (this.failAttach) throw this.failAttach;
    this.attached.set(ep.id, ep);
  }

  async detach(ep: EndpointInfo): Promise<void> {
    this.attached.delete(ep.id);
  }

  async attachedIds(): Promise<number[]> {
    return [...this.attached.keys()];
  }
}
