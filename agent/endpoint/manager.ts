// The endpoint manager: creates and deletes pod attachments on behalf of the CNI plugin. Runs in
// the agent, inside the node's network namespace. Operations are serialised (one at a time per
// node), idempotent, and roll back completely on failure, so a failed ADD leaves nothing behind.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Ipam, IpamError } from './ipam.ts';
import { EndpointStore, key } from './store.ts';
import { CniCode, RESERVED_INIT } from './types.ts';
import type {
  AddResult,
  EndpointDatapath,
  EndpointError,
  EndpointInfo,
  EndpointRequest,
  EndpointResponse,
  PodLinks,
} from './types.ts';
import { hostIfname, iprouteLinks } from './veth.ts';

export interface EndpointManagerOptions {
  podCIDR: string;
  /** node state dir: ipam.json and endpoints.json live here; omit for in-memory state */
  stateDir?: string;
  datapath: EndpointDatapath;
  /** kernel link operations; iproute2 by default */
  links?: PodLinks;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: EndpointError };

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export class EndpointManager {
  readonly ipam: Ipam;
  private readonly store: EndpointStore;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly links: PodLinks;

  constructor(private readonly opts: EndpointManagerOptions) {
    this.links = opts.links ?? iprouteLinks;
    this.ipam = Ipam.open(opts.podCIDR, opts.stateDir && join(opts.stateDir, 'ipam.json'));
    this.store = new EndpointStore(opts.stateDir && join(opts.stateDir, 'endpoints.json'));
  }

  /**
   * Restores persisted endpoints after a restart: re-attaches the datapath of every endpoint
   * whose veth still exists, forgets the rest, and frees addresses no endpoint owns (a crash
   * between allocation and commit).
   */
  restore(): Promise<{ restored: number; removed: number; failed: number; orphanLinks: number }> {
    return this.serial(async () => {
      const counts = { restored: 0, removed: 0, failed: 0, orphanLinks: 0 };
      for (const ep of this.store.all()) {
        const link = await this.links.hostLink(ep.hostIfname);
        if (!link || link.ifindex !== ep.hostIfindex) {
          await this.forget(ep);
          counts.removed++;
          continue;
        }
        try {
          await this.opts.datapath.attach(ep);
          counts.restored++;
        } catch (err) {
          // The previous agent's programs stay attached; the next ADD/restart retries.
          counts.failed++;
          this.opts.log?.('endpoint restore failed', { id: ep.id, error: String(err) });
        }
      }
      const owners = new Set(this.store.all().map((ep) => key(ep.containerId, ep.podIfname)));
      for (const owner of this.ipam.allocations().values())
        if (!owners.has(owner)) this.ipam.release(owner);
      // veths of an ADD that was cut short by a crash: made, never recorded
      const known = new Set(this.store.all().map((ep) => ep.hostIfname));
      for (const name of await this.links.listHostLinks()) {
        if (known.has(name)) continue;
        await this.links.remove(name);
        counts.orphanLinks++;
      }
      return counts;
    });
  }

  handle(req: EndpointRequest): Promise<EndpointResponse> {
    switch (req.op) {
      case 'ping':
        return Promise.resolve({ ok: true });
      case 'list':
        return this.serial(() => this.inspect());
      case 'add':
        return this.serial(() => this.add(req)).then(toResponse);
      case 'del':
        return this.serial(() => this.del(req.containerId, req.ifname)).then(toResponse);
      case 'check':
        return this.serial(() => this.check(req)).then(toResponse);
      default:
        return Promise.resolve(
          fail(
            CniCode.DECODE_FAILURE,
            `unknown operation ${JSON.stringify((req as { op?: unknown }).op)}`,
          ),
        );
    }
  }

  list(): EndpointInfo[] {
    return this.store.all();
  }

  /**
   * Persists a new identity of a known endpoint (the agent's pods queue follows relabels). Not
   * serialised: the identity is resolved from inside ADD; an endpoint not stored yet is skipped.
   */
  updateIdentity(ep: EndpointInfo): void {
    if (this.store.get(ep.containerId, ep.podIfname)?.id === ep.id) this.store.put(ep);
  }

  /** Endpoints, datapath ids and IPAM allocations: what `list` answers, for status and leak checks. */
  private async inspect(): Promise<EndpointResponse> {
    const datapathIds = await this.opts.datapath.attachedIds?.();
    return {
      ok: true,
      endpoints: this.list(),
      ...(datapathIds && { datapathIds }),
      ipam: Object.fromEntries(this.ipam.allocations()),
    };
  }

  private async add(req: Extract<EndpointRequest, { op: 'add' }>): Promise<Outcome<AddResult>> {
    const bad = validateAttachment(req.containerId, req.ifname);
    if (bad) return bad;
    if (!req.netns || !existsSync(req.netns)) {
      return {
        ok: false,
        error: {
          code: CniCode.INVALID_ENV,
          msg: `network namespace ${JSON.stringify(req.netns)} does not exist`,
          details: 'CNI_NETNS must name an existing namespace file',
        },
      };
    }
    const known = this.store.get(req.containerId, req.ifname);
    if (known) return { ok: true, value: { endpoint: known, gateway: this.ipam.routerIP } };

    const owner = key(req.containerId, req.ifname);
    const host = hostIfname(req.containerId, req.ifname);
    let ip: string;
    try {
      ip = this.ipam.allocate(owner);
    } catch (err) {
      if (err instanceof IpamError)
        return { ok: false, error: { code: CniCode.IPAM_EXHAUSTED, msg: err.message } };
      throw err;
    }
    let ep: EndpointInfo | undefined;
    try {
      await this.links.remove(host); // a leftover of an attempt that crashed half-way
      const links = await this.links.create({
        host,
        pod: req.ifname,
        netns: req.netns,
        ip,
        routerIP: this.ipam.routerIP,
      });
      ep = {
        id: this.store.nextId(),
        containerId: req.containerId,
        podNamespace: req.podNamespace ?? '',
        podName: req.podName ?? '',
        ip,
        hostIfname: host,
        hostIfindex: links.host.ifindex,
        hostMac: links.host.mac,
        podIfname: req.ifname,
        podMac: links.pod.mac,
        netnsPath: req.netns,
        identity: RESERVED_INIT,
        namedPorts: req.namedPorts ?? [],
      };
      await this.opts.datapath.attach(ep);
      this.store.put(ep);
      this.opts.log?.('endpoint created', { id: ep.id, ip, host, container: req.containerId });
      return { ok: true, value: { endpoint: ep, gateway: this.ipam.routerIP } };
    } catch (err) {
      if (ep) await this.opts.datapath.detach(ep).catch(() => {});
      await this.links.remove(host).catch(() => {});
      this.ipam.release(owner);
      const msg = err instanceof Error ? err.message : String(err);
      return {
        ok: false,
        error: {
          code: CniCode.SETUP_FAILED,
          msg: `could not attach container ${req.containerId}`,
          details: msg,
        },
      };
    }
  }

  private async del(containerId: string, ifname: string): Promise<Outcome<undefined>> {
    const bad = validateAttachment(containerId, ifname);
    if (bad) return bad;
    const ep = this.store.get(containerId, ifname);
    if (ep) await this.forget(ep);
    else this.ipam.release(key(containerId, ifname));
    return { ok: true, value: undefined };
  }

  private async check(req: Extract<EndpointRequest, { op: 'check' }>): Promise<Outcome<undefined>> {
    const { containerId, ifname, netns } = req;
    const ep = this.store.get(containerId, ifname);
    if (!ep)
      return {
        ok: false,
        error: {
          code: CniCode.UNKNOWN_CONTAINER,
          msg: `no endpoint for container ${containerId} interface ${ifname}`,
        },
      };
    if (req.expectIP !== undefined && req.expectIP !== ep.ip) {
      return {
        ok: false,
        error: {
          code: CniCode.CHECK_FAILED,
          msg: `prevResult names ${req.expectIP}, but endpoint ${ep.id} holds ${ep.ip}`,
        },
      };
    }
    const link = await this.links.hostLink(ep.hostIfname);
    if (!link || link.ifindex !== ep.hostIfindex) {
      return {
        ok: false,
        error: {
          code: CniCode.CHECK_FAILED,
          msg: `host interface ${ep.hostIfname} of endpoint ${ep.id} is missing`,
        },
      };
    }
    if (!(await this.links.podHasAddress(netns, ifname, ep.ip))) {
      return {
        ok: false,
        error: { code: CniCode.CHECK_FAILED, msg: `${ifname} in ${netns} does not hold ${ep.ip}` },
      };
    }
    return { ok: true, value: undefined };
  }

  /** Removes every trace of an endpoint; each step tolerates what is already gone. */
  private async forget(ep: EndpointInfo): Promise<void> {
    await this.opts.datapath.detach(ep);
    await this.links.remove(ep.hostIfname);
    this.store.remove(ep.containerId, ep.podIfname);
    this.ipam.release(key(ep.containerId, ep.podIfname));
    this.opts.log?.('endpoint deleted', { id: ep.id, ip: ep.ip, container: ep.containerId });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }
}

function validateAttachment(containerId: string, ifname: string): Outcome<never> | undefined {
  if (!containerId || typeof containerId !== 'string')
    return { ok: false, error: { code: CniCode.INVALID_ENV, msg: 'CNI_CONTAINERID is empty' } };
  if (!IFNAME.test(ifname ?? '')) {
    return {
      ok: false,
      error: {
        code: CniCode.INVALID_ENV,
        msg: `CNI_IFNAME ${JSON.stringify(ifname)} is not a valid interface name`,
        details: 'use 1-15 letters, digits, "_", "." or "-"',
      },
    };
  }
  return undefined;
}

function toResponse(outcome: Outcome<AddResult | undefined>): EndpointResponse {
  if (!outcome.ok) return { ok: false, error: outcome.error };
  return outcome.value ? { ok: true, result: outcome.value } : { ok: true };
}

function fail(code: number, msg: string): EndpointResponse {
  return { ok: false, error: { code, msg } };
}
