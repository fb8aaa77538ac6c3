// EndpointDatapath over the kernel datapath (agent/datapath): an endpoints row per pod IP and the
// pod programs on the host-side veth. Policy is not this file's business: the enforcement flags
// an earlier agent (or the policy engine) wrote are kept, so a restart never loosens a pod.
import type { Datapath } from '../datapath/types.ts';
import { RESERVED_INIT, type EndpointDatapath, type EndpointInfo } from './types.ts';

export class BpfEndpointDatapath implements EndpointDatapath {
  constructor(private readonly dp: Datapath) {}

  async attach(ep: EndpointInfo): Promise<void> {
    const current = this.dp.endpoints.get(ep.ip);
    const keep = current?.endpointId === ep.id ? current : undefined;
    // The row before the programs: a program that sees the pod finds its endpoint.
    this.dp.endpoints.set(ep.ip, {
      endpointId: ep.id,
      ifindex: ep.hostIfindex,
      identity: keep && ep.identity === RESERVED_INIT ? keep.identity : ep.identity,
      ingressEnforced: keep?.ingressEnforced ?? false,
      egressEnforced: keep?.egressEnforced ?? false,
    });
    this.dp.attachEndpoint({ ifindex: ep.hostIfindex });
  }

  async detach(ep: EndpointInfo): Promise<void> {
    this.dp.removeEndpoint(ep.id);
  }

  async attachedIds(): Promise<number[]> {
    return [...new Set([...this.dp.endpoints.values()].map((v) => v.endpointId))];
  }
}
