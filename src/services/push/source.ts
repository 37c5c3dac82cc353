/**
 * What `zbk push` needs from the source of one dataset: a port with a ZFS
 * implementation (./zfs-source.ts: snapshots, bookmarks/holds, `zfs send`
 * flags) and a btrfs one (./btrfs-source.ts: read-only snapshots, zbk's pin
 * subvolumes, `btrfs send`). push.ts talks only to this interface, so the
 * order of effects it documents holds for both.
 *
 * **Which source**: a dataset named by an absolute path (`/srv/photos`) is a
 * btrfs subvolume; anything else is a ZFS dataset (ZFS names never start
 * with `/`). The name alone decides, so a repository restored from the
 * bucket alone knows the source of each of its datasets.
 *
 * **Identity**: what a stream records as `to.guid` / `from.guid` (decimal
 * text in the manifest and the records). ZFS: the snapshot's guid. btrfs: the
 * UUID of zbk's pin of the user's snapshot, as a 128-bit integer
 * (`BigInt('0x' + hex)`), because the pin is what is sent and what an
 * incremental names as its parent (see src/source/types.ts). `createtxg` is
 * the user's snapshot's creation order on both (btrfs: otransid).
 */
import type { StreamRow, StreamWithVolumes, SnapshotRef } from '../../manifest/types.js';
import { assertBtrfsPath } from '../../btrfs/paths.js';
import type { SendStream, SourceKind } from '../../source/types.js';
import { assertDatasetName } from '../../zfs/names.js';
import type { BaseRef } from './base-protection.js';
import type { FlagChoice } from './send-flags.js';

/** A snapshot of the dataset as push chooses among them. */
export interface PushSnapshot {
  /** What messages show: ZFS `pool/ds@snap`; btrfs the absolute path. */
  name: string;
  /** What the manifest records as its name and `--snapshot` takes: ZFS `snap`; btrfs the path relative to its mount (`.snapshots/12/snapshot`). */
  shortName: string;
  /** The source's own identity of the snapshot (ZFS guid; btrfs the user snapshot's UUID as a 128-bit integer). */
  guid: bigint;
  /** Creation order (ZFS createtxg, btrfs otransid). */
  createtxg: bigint;
  creation: number;
  /** Bytes referenced, for the cost of a full stream in a dry run; 0 when the source cannot tell. */
  referenced: number;
}

/** What to send: the thing the tool reads, an optional base, and the exact flags. */
export interface PushSendRequest {
  snapshot: string;
  from?: string;
  flags: readonly string[];
}

export interface PushSource {
  readonly kind: SourceKind;

  /** False when the dataset does not exist (a typo on the command line). */
  exists(dataset: string): Promise<boolean>;

  /** The dataset's snapshots, oldest first. */
  listSnapshots(dataset: string): Promise<PushSnapshot[]>;

  /**
   * The identity a stream of `snapshot` records, when it is known without
   * changing anything (ZFS: its guid; btrfs: the UUID of its pin, null when
   * it has none, so it was never pushed from here).
   */
  pushedIdentity(dataset: string, snapshot: PushSnapshot): Promise<bigint | null>;

  /**
   * Make `snapshot` sendable as a new stream and return the identity the
   * stream records (btrfs: pins it; ZFS: nothing to do). Called before the
   * stream row is written; a pin whose row never came is dropped by the
   * next {@link reconcile}.
   */
  prepareTarget(dataset: string, snapshot: PushSnapshot): Promise<bigint>;

  /** The snapshot here that a stream recorded as `ref` was made of (ZFS: same guid; btrfs: the one zbk's pin with that identity stands for), or null. */
  findLocal(dataset: string, ref: SnapshotRef & { createtxg?: bigint }): Promise<PushSnapshot | null>;

  /** What the tool sends for a stream's target, or null when it is gone (an interrupted upload then cannot resume). */
  resolveTarget(dataset: string, to: SnapshotRef): Promise<string | null>;

  /**
   * The creation order, on this source now, of the snapshot a recorded ref
   * stands for (ZFS: the snapshot's or zbk's bookmark's createtxg; btrfs: the
   * user's snapshot's otransid, else its pin's), or null when it is not
   * here. Compared with {@link PushSnapshot.createtxg}, never with a
   * recorded order: a dataset moved to another pool or filesystem counts
   * from another start.
   */
  localOrder(dataset: string, ref: SnapshotRef): Promise<bigint | null>;

  /** Why the next stream is full when {@link resolveBase} found nothing for the last pushed snapshot `last` (one line, for the push's reason). */
  baseGoneReason(last: SnapshotRef): string;

  /** Where an incremental from `base` is sent from, or null: the base is gone and the next stream is full. */
  resolveBase(dataset: string, base: SnapshotRef): Promise<BaseRef | null>;

  /**
   * Make zbk's protection of the dataset match the manifest: the last pushed
   * base stays sendable, what `inFlight` (the upload this run resumes) reads
   * stays protected, everything else zbk placed is dropped.
   */
  reconcile(dataset: string, inFlight: StreamWithVolumes | null): Promise<void>;

  /** Run `fn` (the send of `stream`) with what the send reads protected from pruners. */
  whileSending<T>(dataset: string, stream: StreamRow, fn: () => Promise<T>): Promise<T>;

  /**
   * The flags of a new stream. `chainFlags`: the flags of the stream it
   * builds on (null: unknown, recorded by an older zbk), or undefined for a
   * full stream (a new chain).
   */
  chooseFlags(dataset: string, chainFlags: readonly string[] | null | undefined): Promise<FlagChoice>;

  /**
   * The flags `stream` is sent with (those recorded, or what an older zbk
   * sent), refused with SEND_FLAGS_UNAVAILABLE where this machine cannot
   * send exactly them: a resume must produce the same bytes.
   */
  sendFlagsOf(stream: StreamRow): Promise<string[]>;

  /**
   * About how many bytes a full stream of `snapshot` carries, for prices and
   * plans (a new full of a consolidation, a dry run): ZFS its referenced
   * size; btrfs, which cannot tell, the apparent size of its files, measured
   * by walking it (a full `btrfs send` carries them, plus metadata).
   */
  fullStreamSize(snapshot: PushSnapshot): Promise<number>;

  /** Estimated stream size in bytes, or null where the source cannot tell. */
  estimate(request: PushSendRequest): Promise<number | null>;

  openSend(request: PushSendRequest): Promise<SendStream>;
}

/**
 * The methods that only read the source, which a port made without a
 * manifest offers (checks before the push lock, reports, drills): the
 * compiler, not a run, refuses a listing caller that would change what zbk
 * protects.
 */
export type SourceListing = Pick<PushSource, 'kind' | 'exists' | 'listSnapshots' | 'pushedIdentity' | 'findLocal' | 'resolveTarget' | 'localOrder' | 'fullStreamSize'>;

/** The source kind of a dataset name (see the module comment). */
export function sourceKindOf(dataset: string): SourceKind {
  return dataset.startsWith('/') ? 'btrfs' : 'zfs';
}

/** InvalidNameError (exit 2) unless `dataset` is a valid name for its source: a ZFS dataset name, or a normalized absolute path without white space. */
export function assertSourceDatasetName(dataset: string): string {
  return sourceKindOf(dataset) === 'btrfs' ? assertBtrfsPath(dataset, 'btrfs dataset (subvolume path)') : assertDatasetName(dataset);
}

/** What a restore of `dataset` receives into, for hints: `<dataset>` (ZFS) or `<directory>` (btrfs). */
export function targetWord(dataset: string): string {
  return sourceKindOf(dataset) === 'btrfs' ? '<directory on btrfs>' : '<dataset>';
}

/** What messages call a snapshot of `dataset` by its recorded name. */
export function snapshotLabel(dataset: string, name: string): string {
  return sourceKindOf(dataset) === 'btrfs' ? `${dataset} snapshot ${name}` : `${dataset}@${name}`;
}

/** A btrfs UUID (`xxxxxxxx-xxxx-…`) as the 128-bit integer a manifest records. */
export function uuidToId(uuid: string): bigint {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error(`not a UUID: ${uuid}`);
  return BigInt(`0x${hex}`);
}

/** The UUID a recorded 128-bit identity stands for (inverse of {@link uuidToId}). */
export function idToUuid(id: bigint | string): string {
  const hex = BigInt(id).toString(16).padStart(32, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
