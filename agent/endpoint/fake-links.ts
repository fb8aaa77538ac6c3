// In-memory PodLinks for unit tests of the endpoint manager: veths as map rows.
import type { LinkInfo, PodLinkPlan, PodLinks } from './types.ts';

export class FakePodLinks implements PodLinks {
  readonly hosts = new Map<string, PodLinkPlan & LinkInfo>();
  /** interfaces that exist in a pod namespace: "netns/ifname" */
  readonly podIfs = new Set<string>();
  failCreate: Error | undefined;
  creates = 0;
  private nextIndex = 10;

  async create(plan: PodLinkPlan): Promise<{ host: LinkInfo; pod: LinkInfo }> {
    this.creates++;
    if (this.failCreate) throw this.failCreate;
    if (this.hosts.has(plan.host) || this.podIfs.has(`${plan.netns}/${plan.pod}`))
      throw new Error('RTNETLINK answers: File exists');
    const host = {
      ifindex: this.nextIndex++,
      mac: `02:00:00:00:00:${(this.nextIndex % 256).toString(16).padStart(2, '0')}`,
    };
    this.hosts.set(plan.host, { ...plan, ...host });
    this.podIfs.add(`${plan.netns}/${plan.pod}`);
    return { host, pod: { ifindex: 2, mac: '02:00:00:00:01:01' } };
  }

  async remove(hostIfname: string): Promise<void> {
    const link = this.hosts.get(hostIfname);
    if (!link) return;
    this.hosts.delete(hostIfname);
    this.podIfs.delete(`${link.netns}/${link.pod}`);
  }

  async hostLink(hostIfname: string): Promise<LinkInfo | undefined> {
    const link = this.hosts.get(hostIfname);
    return link && { ifindex: link.ifindex, mac: link.mac };
  }

  async listHostLinks(): Promise<string[]> {
    return [...this.hosts.keys()];
  }

  async podHasAddress(netns: string, ifname: string, ip: string): Promise<boolean> {
    return [...this.hosts.values()].some(
      (l) => l.netns === netns && l.pod === ifname && l.ip === ip,
    );
  }
}
