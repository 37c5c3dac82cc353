/**
 * What keeps the base of the next incremental sendable, and the holds of a
 * running send.
 *
 * - `bookmark` mode (`[zfs] protect_base = "bookmark"`, the default, on a
 *   ZFS with bookmarks): the last pushed snapshot gets zbk's bookmark
 *   `pool/ds#zbk-<snap>` and no long-lived hold, so snapshot pruners
 *   (sanoid, zfs-auto-snapshot) can destroy it; the next incremental is then
 *   sent from the bookmark.
 * - `hold` mode (`protect_base = "hold"`, or a ZFS without bookmarks such as
 *   zfs-fuse): the last pushed snapshot carries the hold `zbk` until a newer
 *   base is safely uploaded (and, where bookmarks exist, the bookmark too).
 *
 * The snapshots a running send reads carry the hold `zbk-send` for the
 * duration of the send in both modes. Every hold is recorded in the manifest
 * before it is placed (zfs-fuse cannot list holds), so a run killed at any
 * moment leaves nothing the next run does not release.
 */
import type { ProtectBase } from '../../config/config.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { SnapshotRef, StreamWithVolumes } from '../../manifest/types.js';
import type { ZfsCapabilities } from '../../zfs/types.js';
import type { Zfs } from '../../zfs/zfs.js';

/** Hold tag on the base of the next incremental in hold mode (kept until a newer base is safely uploaded). */
export const BASE_HOLD_TAG = 'zbk';
/** Hold tag on the snapshots a running send reads. */
export const SEND_HOLD_TAG = 'zbk-send';
/** Short-name prefix of zbk's bookmarks. */
export const BOOKMARK_PREFIX = 'zbk-';

/** The base of an incremental: its snapshot identity, and what `zfs send -i` reads it from (snapshot or bookmark). */
export interface BaseRef {
  name: string;
  guid: bigint;
  sendFrom: string;
}

interface HoldRecord {
  tag: string;
  snapshot: string;
}

/** The parts of the zfs adapter this module uses. */
export type BaseProtectionZfs = Pick<Zfs, 'capabilities' | 'listSnapshots' | 'listBookmarks' | 'bookmark' | 'destroyBookmark' | 'hold' | 'release' | 'exists'>;
/** The parts of the manifest this module uses. */
export type BaseProtectionManifest = Pick<Manifest, 'getValue' | 'setValue' | 'lastPushedSnapshot'>;

/** The protection in force: a bookmark when asked for and the ZFS has bookmarks, else a hold. */
export function protectionMode(wanted: ProtectBase, caps: Pick<ZfsCapabilities, 'bookmarks'>): ProtectBase {
  return wanted === 'bookmark' && caps.bookmarks ? 'bookmark' : 'hold';
}

/** One line on how the base of the next incremental is protected, for `zbk doctor`. */
export function describeProtection(wanted: ProtectBase, caps: Pick<ZfsCapabilities, 'bookmarks'>): string {
  if (protectionMode(wanted, caps) === 'bookmark') {
    return `bookmark pool/ds#${BOOKMARK_PREFIX}<snapshot> of the last pushed snapshot, no long-lived hold: snapshot pruners may destroy it, the next incremental is sent from the bookmark`;
  }
  const why = wanted === 'hold' ? '[zfs] protect_base = "hold"' : 'this ZFS has no bookmarks';
  return `hold "${BASE_HOLD_TAG}" on the last pushed snapshot (${why}): pruners cannot destroy it until a newer one is pushed ("zfs release ${BASE_HOLD_TAG} pool/ds@snap" drops it; the next push then sends a full stream)`;
}

function full(dataset: string, short: string): string {
  return `${dataset}@${short}`;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class BaseProtection {
  constructor(
    private readonly zfs: BaseProtectionZfs,
    private readonly manifest: BaseProtectionManifest,
    private readonly wanted: ProtectBase,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Where an incremental from `base` can be sent from: the snapshot itself
   * when it still exists here with the same guid, else zbk's bookmark of it
   * (OpenZFS), else null (a full stream is needed).
   */
  async resolveBase(dataset: string, base: SnapshotRef): Promise<BaseRef | null> {
    const snap = (await this.zfs.listSnapshots(dataset)).find((s) => s.guid === base.guid);
    if (snap) return { name: snap.shortName, guid: snap.guid, sendFrom: snap.name };
    if ((await this.zfs.capabilities()).bookmarks) {
      const mark = (await this.zfs.listBookmarks(dataset)).find((b) => b.guid === base.guid);
      if (mark) return { name: base.name, guid: base.guid, sendFrom: mark.name };
    }
    return null;
  }

  /**
   * Make zbk's protection match the manifest. The last pushed snapshot (the
   * base of the next incremental) gets zbk's bookmark where the ZFS has
   * bookmarks (created before older zbk bookmarks go), and the base hold in
   * hold mode — or in bookmark mode when the bookmark could not be made.
   * Every other hold zbk recorded (an older base, a base hold an older zbk
   * placed in what is now bookmark mode, the send holds of a killed run) is
   * released, except the send holds of `inFlight`, the upload this run
   * resumes: its snapshots stay protected from a pruner without a gap
   * (the send takes the same holds again; a later run releases them once
   * that stream is no longer in flight).
   */
  async reconcile(dataset: string, inFlight: StreamWithVolumes | null): Promise<void> {
    const last = this.manifest.lastPushedSnapshot(dataset);
    const local = last ? (await this.zfs.listSnapshots(dataset)).find((s) => s.guid === last.guid) : undefined;
    const caps = await this.zfs.capabilities();
    const marked = local !== undefined && caps.bookmarks && (await this.moveBookmark(dataset, local.shortName, local.guid));
    const heldBase = local !== undefined && (protectionMode(this.wanted, caps) === 'hold' || !marked) ? local.shortName : null;
    if (heldBase !== null) await this.placeHold(dataset, BASE_HOLD_TAG, heldBase);
    const resuming = new Set(inFlight ? [inFlight.to.name, ...(inFlight.from ? [inFlight.from.name] : [])] : []);
    for (const h of this.recordedHolds(dataset)) {
      if (h.tag === BASE_HOLD_TAG && h.snapshot === heldBase) continue;
      if (h.tag === SEND_HOLD_TAG && resuming.has(h.snapshot)) continue;
      await this.dropHold(dataset, h.tag, h.snapshot);
    }
  }

  /** Hold `snapshots` (those that exist) with the send tag for the duration of `fn`. */
  async whileSending<T>(dataset: string, snapshots: readonly string[], fn: () => Promise<T>): Promise<T> {
    const local = new Set((await this.zfs.listSnapshots(dataset)).map((s) => s.shortName));
    const held = snapshots.filter((s) => local.has(s));
    try {
      for (const s of held) await this.placeHold(dataset, SEND_HOLD_TAG, s);
      return await fn();
    } finally {
      for (const s of held) await this.dropHold(dataset, SEND_HOLD_TAG, s).catch(() => undefined);
    }
  }

  /**
   * zbk's bookmark of `snapshot` exists afterwards (created if needed, first),
   * then older zbk bookmarks are destroyed. False (with a warning) when the
   * bookmark could not be made.
   */
  private async moveBookmark(dataset: string, snapshot: string, guid: bigint): Promise<boolean> {
    const name = `${dataset}#${BOOKMARK_PREFIX}${snapshot}`;
    let marks;
    try {
      marks = await this.zfs.listBookmarks(dataset);
      const mine = marks.find((b) => b.name === name);
      // Same name, other snapshot (the dataset was rolled back and the name reused): replace it.
      if (mine && mine.guid !== guid) await this.zfs.destroyBookmark(name);
      if (!mine || mine.guid !== guid) await this.zfs.bookmark(full(dataset, snapshot), name);
    } catch (err) {
      this.warn(`${dataset}: could not bookmark @${snapshot} as ${name}: ${messageOf(err)}`);
      return false;
    }
    for (const b of marks) {
      if (!b.shortName.startsWith(BOOKMARK_PREFIX) || b.name === name) continue;
      await this.zfs.destroyBookmark(b.name).catch((err: unknown) => this.warn(`${dataset}: could not destroy zbk's older bookmark ${b.name}: ${messageOf(err)}`));
    }
    return true;
  }

  /** Holds zbk placed on this dataset's snapshots and has not released yet (kept in the manifest, since zfs-fuse cannot list holds). */
  private recordedHolds(dataset: string): HoldRecord[] {
    const v = this.manifest.getValue(`holds:${dataset}`);
    return Array.isArray(v) ? (v as HoldRecord[]) : [];
  }

  /** Record first, then hold: a crash in between leaves a record whose release is a no-op. */
  private async placeHold(dataset: string, tag: string, snapshot: string): Promise<void> {
    const held = this.recordedHolds(dataset);
    if (!held.some((h) => h.tag === tag && h.snapshot === snapshot)) this.manifest.setValue(`holds:${dataset}`, [...held, { tag, snapshot }]);
    await this.zfs.hold(tag, full(dataset, snapshot));
  }

  /** Release, then forget. A snapshot that is already gone has no hold to release. */
  private async dropHold(dataset: string, tag: string, snapshot: string): Promise<void> {
    if (await this.zfs.exists(full(dataset, snapshot))) await this.zfs.release(tag, full(dataset, snapshot));
    this.manifest.setValue(
      `holds:${dataset}`,
      this.recordedHolds(dataset).filter((h) => !(h.tag === tag && h.snapshot === snapshot)),
    );
  }
}
