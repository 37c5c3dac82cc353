/**
 * The push port on ZFS (./source.ts): snapshots as zfs lists them, base
 * protection by bookmark or hold (./base-protection.ts), the `zfs send`
 * flags of ./send-flags.ts. A snapshot's identity is its guid.
 */
import type { ZbkConfig } from '../../config/config.js';
import type { StreamRow, StreamWithVolumes, SnapshotRef } from '../../manifest/types.js';
import type { SendStream } from '../../source/types.js';
import type { Zfs } from '../../zfs/zfs.js';
import { BaseProtection, type BaseProtectionManifest, type BaseRef } from './base-protection.js';
import { chooseSendFlags, isRaw, legacySendFlags, sendOptionsFor, type FlagChoice } from './send-flags.js';
import type { PushSendRequest, PushSnapshot, PushSource } from './source.js';

export class ZfsPushSource implements PushSource {
  readonly kind = 'zfs' as const;
  private readonly base: BaseProtection | null;

  /** `manifest` null: a listing port (./sources.ts `sourceListingFor`), whose type offers no method that needs it. */
  constructor(
    private readonly zfs: Zfs,
    manifest: BaseProtectionManifest | null,
    private readonly config: ZbkConfig,
    warn: (message: string) => void,
  ) {
    this.base = manifest ? new BaseProtection(zfs, manifest, config.zfs.protectBase, warn) : null;
  }

  private get protection(): BaseProtection {
    if (!this.base) throw new Error('internal: a ZFS listing port was asked to change what zbk protects');
    return this.base;
  }

  exists(dataset: string): Promise<boolean> {
    return this.zfs.exists(dataset);
  }

  async listSnapshots(dataset: string): Promise<PushSnapshot[]> {
    return (await this.zfs.listSnapshots(dataset)).map((s) => ({
      name: s.name,
      shortName: s.shortName,
      guid: s.guid,
      createtxg: s.createtxg,
      creation: s.creation,
      referenced: s.referenced,
    }));
  }

  async pushedIdentity(_dataset: string, snapshot: PushSnapshot): Promise<bigint> {
    return snapshot.guid;
  }

  async prepareTarget(_dataset: string, snapshot: PushSnapshot): Promise<bigint> {
    return snapshot.guid;
  }

  async findLocal(dataset: string, ref: SnapshotRef): Promise<PushSnapshot | null> {
    return (await this.listSnapshots(dataset)).find((s) => s.guid === ref.guid) ?? null;
  }

  async resolveTarget(dataset: string, to: SnapshotRef): Promise<string | null> {
    const s = (await this.zfs.listSnapshots(dataset)).find((x) => x.guid === to.guid && x.shortName === to.name);
    return s ? s.name : null;
  }

  async localOrder(dataset: string, ref: SnapshotRef): Promise<bigint | null> {
    const snap = (await this.zfs.listSnapshots(dataset)).find((s) => s.guid === ref.guid);
    if (snap) return snap.createtxg;
    if (!(await this.zfs.capabilities()).bookmarks) return null;
    return (await this.zfs.listBookmarks(dataset)).find((b) => b.guid === ref.guid)?.createtxg ?? null;
  }

  baseGoneReason(last: SnapshotRef): string {
    return `the last pushed snapshot @${last.name} no longer exists locally`;
  }

  resolveBase(dataset: string, base: SnapshotRef): Promise<BaseRef | null> {
    return this.protection.resolveBase(dataset, base);
  }

  reconcile(dataset: string, inFlight: StreamWithVolumes | null): Promise<void> {
    return this.protection.reconcile(dataset, inFlight);
  }

  whileSending<T>(dataset: string, stream: StreamRow, fn: () => Promise<T>): Promise<T> {
    const held = [stream.to.name, ...(stream.from ? [stream.from.name] : [])];
    return this.protection.whileSending(dataset, held, fn);
  }

  async chooseFlags(dataset: string, chainFlags: readonly string[] | null | undefined): Promise<FlagChoice> {
    const setting = this.config.datasets.find((d) => d.name === dataset)?.raw ?? 'auto';
    const caps = await this.zfs.capabilities();
    return chooseSendFlags(this.zfs, caps, dataset, setting, chainFlags === undefined ? null : isRaw(chainFlags));
  }

  async sendFlagsOf(stream: StreamRow): Promise<string[]> {
    const caps = await this.zfs.capabilities();
    const flags = stream.sendFlags ?? legacySendFlags(caps);
    sendOptionsFor(flags, caps, `the upload of ${stream.dataset}@${stream.to.name}`);
    return flags;
  }

  async fullStreamSize(snapshot: PushSnapshot): Promise<number> {
    return snapshot.referenced;
  }

  async estimate(request: PushSendRequest): Promise<number | null> {
    return this.zfs.estimateSendSize(await this.sendOptions(request)).catch(() => null);
  }

  async openSend(request: PushSendRequest): Promise<SendStream> {
    return this.zfs.openSend(await this.sendOptions(request));
  }

  private async sendOptions(request: PushSendRequest) {
    const options = sendOptionsFor(request.flags, await this.zfs.capabilities(), `the send of ${request.snapshot}`);
    return { snapshot: request.snapshot, ...(request.from !== undefined ? { from: request.from } : {}), ...options };
  }
}
