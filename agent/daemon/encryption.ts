// Transparent encryption for one node: the WireGuard library (agent/wireguard) fed from the
// cluster's Node objects. This node publishes its key as a Node annotation (the clustermesh API
// server carries it into the node record); every other node with a key becomes a peer, and its
// pod CIDR is routed into the tunnel instead of natively (see `guardNativeRoutes`). Rotations
// are requested on a unix socket of their own (`isthmus wireguard rotate`).
import { join } from 'node:path';
import type { KubeApi } from '../k8s/types.ts';
import { Nodes, type Node } from '../k8s/resources.ts';
import { mustRun, runCommand } from '../routing/command.ts';
import type { RouteNetlink } from '../routing/types.ts';
import { WireguardAgent } from '../wireguard/agent.ts';
import { ControlSocket } from '../wireguard/control-socket.ts';
import {
  annotatedPort,
  WG_KEY_ANNOTATION,
  WG_NEXT_KEY_ANNOTATION,
  WG_NEXT_PORT_ANNOTATION,
  WG_PORT_ANNOTATION,
} from '../wireguard/annotations.ts';
import type { IpcacheTable } from '../ipcache/table.ts';
import { WgNodeTable, withoutTunnelled } from './wg-node-table.ts';
import { mssClampRule } from '../wireguard/routes.ts';
import type { WgNode, WireguardStatus } from '../wireguard/types.ts';

export {
  WG_KEY_ANNOTATION,
  WG_NEXT_KEY_ANNOTATION,
  WG_NEXT_PORT_ANNOTATION,
  WG_PORT_ANNOTATION,
} from '../wireguard/annotations.ts';

export const wireguardSocketPath = (stateDir: string): string => join(stateDir, 'wireguard.sock');

export interface EncryptionOptions {
  cluster: string;
  nodeName: string;
  stateDir: string;
  bpffs: string;
  underlayIf: string;
  /** strict mode (default true): destination-only matching, so pods still reach the world */
  strict: boolean;
  /** period of the Node list that feeds peers and publishes annotations (default 500 ms) */
  pollMs?: number;
  /** ClusterMesh runs: apply no table until `meshSynced()` (a first table without the remote
   * nodes would prune their peers, tunnel routes and strict ranges on an agent restart) */
  awaitMesh?: boolean;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface EncryptionStatus extends WireguardStatus {
  strict: boolean;
  published: boolean;
  lastRotation: RotationResult | null;
}

export interface RotationResult {
  oldKey: string;
  newKey: string;
  missing: string[];
  stillOnOld: string[];
  ms: number;
}

export class NodeEncryption {
  private timer: NodeJS.Timeout | undefined;
  private lastTable = '';
  private synced = false;
  private polling = false;
  private published = false;
  private lastRotation: RotationResult | null = null;
  private rotating: Promise<RotationResult> | undefined;
  /** the annotations this node's Node object must carry now (null: must be absent) */
  private want: Record<string, string | null> = {};
  private server: ControlSocket | undefined;
  /** this cluster's Nodes and the remote clusters' nodes */
  private readonly nodes = new WgNodeTable();
  private meshReady = false;
  /** table passes run one after another: an older table must not overwrite a newer one */
  private applying: Promise<void> = Promise.resolve();
  private applyQueued = false;
  private unfollow: (() => void) | undefined;

  private constructor(
    private readonly o: EncryptionOptions,
    private readonly api: KubeApi,
    readonly wg: WireguardAgent,
  ) {}

  static async start(o: EncryptionOptions, api: KubeApi): Promise<NodeEncryption> {
    const wg = await WireguardAgent.start({
      nodeName: `${o.cluster}/${o.nodeName}`,
      stateDir: o.stateDir,
      ...(o.strict && {
        strict: { pinRoot: o.bpffs, underlayIf: o.underlayIf, localPodCIDRs: [] },
      }),
    });
    const enc = new NodeEncryption(o, api, wg);
    enc.want = enc.currentAnnotations();
    await clampMss(wg.activeDevice.ifname);
    await enc.listen();
    await enc
      .poll()
      .catch((err: unknown) => o.log('encryption sync failed', { error: String(err) }));
    enc.timer = setInterval(
      () =>
        void enc
          .poll()
          .catch((err: unknown) => o.log('encryption sync failed', { error: String(err) })),
      o.pollMs ?? 500,
    );
    enc.resumeRotation();
    return enc;
  }

  /** Native routes to nodes the tunnel carries are not installed (the tunnel's routes own them). */
  guardNativeRoutes(inner: RouteNetlink, staticIPs: string[]): RouteNetlink {
    for (const ip of staticIPs) this.nodes.tunnelled.add(ip);
    return withoutTunnelled(inner, this.nodes.tunnelled);
  }

  /** A remote cluster's node (accepted by ClusterMesh) joins the table: peer, tunnel routes,
   * strict ranges. Its IP is tunnelled at once, so the sink's native route for it is skipped. */
  upsertRemoteNode(node: WgNode): void {
    this.nodes.upsertRemote(node);
    this.scheduleApply();
  }

  deleteRemoteNode(name: string): void {
    if (this.nodes.deleteRemote(name)) this.scheduleApply();
  }

  /** The remotes' initial sync is over (or its wait ended): the merged table may prune now. */
  meshSynced(): void {
    this.meshReady = true;
    this.scheduleApply();
  }

  /** Pod IPs hosted on a node outside its pod CIDRs (ipcache rows with that host IP) become
   * allowed IPs of its peer. */
  followIpcache(ipcache: IpcacheTable): void {
    this.unfollow?.();
    this.unfollow = this.nodes.hosted.follow(ipcache, () => this.scheduleApply());
  }

  async status(): Promise<EncryptionStatus> {
    return {
      ...(await this.wg.status()),
      strict: this.o.strict,
      published: this.published,
      lastRotation: this.lastRotation,
    };
  }

  /** Make-before-break: new key published next to the current one, traffic moves once every
   * peer handshaked on it, the old key goes once no peer sends to it. One at a time. */
  rotate(handshakeTimeoutMs = 30_000): Promise<RotationResult> {
    this.rotating ??= this.runRotation(handshakeTimeoutMs).finally(() => {
      this.rotating = undefined;
    });
    return this.rotating;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unfollow?.();
    // open requests (a rotate waiting for handshakes) are answered "agent stopping" at once
    await this.server?.close();
    this.wg.stop();
  }

  private async runRotation(handshakeTimeoutMs: number): Promise<RotationResult> {
    const started = Date.now();
    const oldKey = this.wg.publicKey;
    const newKey = await this.wg.beginRotation();
    const next = (await this.wg.status()).rotation!;
    this.want = {
      ...this.want,
      [WG_NEXT_KEY_ANNOTATION]: newKey,
      [WG_NEXT_PORT_ANNOTATION]: String(next.listenPort),
    };
    await this.publish(this.want);
    const { missing, stillOnOld } = await this.wg.completeRotation({
      handshakeTimeoutMs,
      // called before the library swaps its active device: publish the new one explicitly
      afterSwitch: async () => {
        await clampMss(next.device);
        this.want = flipAnnotations(newKey, next.listenPort);
        await this.publish(this.want);
      },
    });
    this.lastRotation = { oldKey, newKey, missing, stillOnOld, ms: Date.now() - started };
    this.o.log('wireguard rotation', { ...this.lastRotation });
    if (stillOnOld.length) void this.retireLater();
    return this.lastRotation;
  }

  /** A rotation the previous agent left in flight is finished (agent/wireguard README
   * "Resuming"): before the switch, the next key is published again and the rotation completes;
   * after it, the old device goes once idle. Nobody waits on the result; status shows it. */
  private resumeRotation(): void {
    const fail = (err: unknown) =>
      this.o.log('wireguard rotation resume failed', { error: String(err) });
    if (this.wg.resumed) this.o.log('wireguard rotation found at start', { ...this.wg.resumed });
    if (this.wg.nextPublicKey) {
      this.o.log('wireguard rotation resumed', { newKey: this.wg.nextPublicKey });
      void this.finishResumed().catch(fail);
    } else if (this.wg.retiringDevice) {
      this.o.log('wireguard retiring resumed', { device: this.wg.retiringDevice.ifname });
      void this.retireLater().catch(fail);
    }
  }

  /** Nobody asked for this rotation in this process, so nobody retries it: peers that did not
   * handshake on the next key yet (their agent down, their cluster cut off) are waited for
   * until they do or this agent stops. */
  private async finishResumed(): Promise<void> {
    while (this.server?.listening && this.wg.nextPublicKey) {
      const { missing } = await this.rotate();
      if (!missing.length) return;
      this.o.log('wireguard resumed rotation waits for peers', { missing });
    }
  }

  private async retireLater(): Promise<void> {
    for (let i = 0; i < 20; i++) {
      const busy = await this.wg.retireOld().catch(() => ['error']);
      if (!busy.length) return;
    }
  }

  /** One pass: publish our annotations, feed the peers from the Node list when it changed. */
  private async poll(): Promise<void> {
    if (this.polling) return; // one pass at a time: an older table must not overwrite a newer one
    this.polling = true;
    try {
      await this.pollOnce();
    } finally {
      this.polling = false;
    }
  }

  private async pollOnce(): Promise<void> {
    const { items } = await this.api.list(Nodes);
    const self = items.find((n) => n.metadata.name === this.o.nodeName);
    // others may rewrite the Node (the lab kubelet re-registers it): keep our annotations there
    if (self && !annotated(self, this.want)) await this.publish(this.want);
    this.nodes.setLocal(items.flatMap((n) => wgNodeOf(this.o.cluster, n)));
    await this.applyTable();
  }

  /** A table pass soon; bursts (a remote's initial sync brings every node) make one pass. */
  private scheduleApply(): void {
    if (this.applyQueued) return;
    this.applyQueued = true;
    void this.applyTable().catch((err: unknown) =>
      this.o.log('encryption table pass failed', { error: String(err) }),
    );
  }

  /** Queues a pass after the running one; the pass reads the newest table when it starts. */
  private applyTable(): Promise<void> {
    const run = this.applying.then(() => {
      this.applyQueued = false;
      return this.applyNow();
    });
    this.applying = run.catch(() => {});
    return run;
  }

  private async applyNow(): Promise<void> {
    // setPeers prunes: never before both parts of the table are known
    if (!this.nodes.localListed || (this.o.awaitMesh && !this.meshReady)) return;
    const table = this.nodes.rows();
    const text = JSON.stringify(table);
    if (this.synced && text === this.lastTable) return;
    await this.wg.setPeers(table);
    this.synced = true;
    this.lastTable = text;
  }

  /** The node's keys as they stand, the next key too while a resumed rotation is pending (so the
   * first pass does not withdraw it from the peers). */
  private currentAnnotations(): Record<string, string | null> {
    const next = this.wg.nextDevice;
    const flip = flipAnnotations(this.wg.publicKey, this.wg.activeDevice.port);
    if (!next || !this.wg.nextPublicKey) return flip;
    return {
      ...flip,
      [WG_NEXT_KEY_ANNOTATION]: this.wg.nextPublicKey,
      [WG_NEXT_PORT_ANNOTATION]: String(next.port),
    };
  }

  /** Read-modify-write of our Node's annotations (null removes); retried on conflicts. */
  private async publish(changes: Record<string, string | null>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const node = await this.api.get(Nodes, this.o.nodeName);
        const annotations = { ...node.metadata.annotations };
        for (const [k, v] of Object.entries(changes))
          if (v === null) delete annotations[k];
          else annotations[k] = v;
        await this.api.replace(Nodes, { ...node, metadata: { ...node.metadata, annotations } });
        this.published = true;
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  }

  /** `{"op":"rotate"}` or `{"op":"status"}`, one JSON line each way. */
  private async listen(): Promise<void> {
    this.server = await ControlSocket.listen(wireguardSocketPath(this.o.stateDir), (line) =>
      this.answer(line),
    );
  }

  private async answer(line: string): Promise<Record<string, unknown>> {
    try {
      const req = JSON.parse(line) as { op?: string; handshakeTimeoutMs?: number };
      if (req.op === 'status') return { ok: true, status: await this.status() };
      if (req.op === 'rotate')
        return { ok: true, rotation: await this.rotate(req.handshakeTimeoutMs) };
      return { ok: false, error: `unknown op ${JSON.stringify(req.op)}: use "status" or "rotate"` };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
  }
}

/** The annotations of a node whose only key is `key` on `port`. */
function flipAnnotations(key: string, port: number): Record<string, string | null> {
  return {
    [WG_KEY_ANNOTATION]: key,
    [WG_PORT_ANNOTATION]: String(port),
    [WG_NEXT_KEY_ANNOTATION]: null,
    [WG_NEXT_PORT_ANNOTATION]: null,
  };
}

function annotated(node: Node, want: Record<string, string | null>): boolean {
  const a = node.metadata.annotations ?? {};
  return Object.entries(want).every(([k, v]) => (v === null ? !(k in a) : a[k] === v));
}

/** A Node object as a row of the WireGuard node table (absent key: no peer yet). */
export function wgNodeOf(cluster: string, node: Node): WgNode[] {
  const ip = node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
  const cidrs = node.spec?.podCIDRs?.length
    ? node.spec.podCIDRs
    : node.spec?.podCIDR
      ? [node.spec.podCIDR]
      : [];
  if (!ip || !cidrs.length) return [];
  const a = node.metadata.annotations ?? {};
  const port = (k: string) => annotatedPort(a[k]);
  const row: WgNode = {
    name: `${cluster}/${node.metadata.name}`,
    nodeIP: ip,
    podCIDRs: cidrs,
    podIPs: [],
  };
  if (a[WG_KEY_ANNOTATION]) row.publicKey = a[WG_KEY_ANNOTATION];
  if (port(WG_PORT_ANNOTATION)) row.port = port(WG_PORT_ANNOTATION);
  if (a[WG_NEXT_KEY_ANNOTATION]) row.nextPublicKey = a[WG_NEXT_KEY_ANNOTATION];
  if (port(WG_NEXT_PORT_ANNOTATION)) row.nextPort = port(WG_NEXT_PORT_ANNOTATION);
  return [row];
}

/** TCP into the tunnel never carries segments larger than its MTU (pod veths keep 1500). */
async function clampMss(dev: string): Promise<void> {
  const rule = mssClampRule(dev);
  const check = ['iptables', ...rule.map((x) => (x === '-A' ? '-C' : x))];
  if ((await runCommand(check)).code !== 0) await mustRun(['iptables', ...rule]);
}
