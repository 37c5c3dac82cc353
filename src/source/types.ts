/**
 * What a backup needs from a snapshot source (issue #19): ZFS today
 * (src/zfs/), btrfs next to it (src/btrfs/). A source lists the snapshots of
 * a dataset with an identity that survives send and receive, sends one as a
 * stream (full or incremental), keeps the base of the next incremental
 * sendable whatever the user's snapshot tool prunes, and receives a stream
 * into a restore target.
 *
 * **Identity** is an opaque string compared for equality only:
 * - ZFS: the snapshot's 64-bit `guid` as canonical decimal text (the manifest
 *   already stores guids as that TEXT, and the restore job compares them as
 *   strings). `zfs receive` gives the received snapshot the same guid.
 * - btrfs: the subvolume's *received UUID* when it has one, else its UUID
 *   (lower-case, with dashes). `btrfs send` names a subvolume by exactly
 *   that (kernel send.c), `btrfs receive` stores it as the new subvolume's
 *   received UUID, so the identity survives any number of send/receive hops;
 *   a rename (`mv`) keeps it.
 * A string and not a `bigint` because a UUID is 128 bits and has no order;
 * order is the separate {@link SourceSnapshot.order}.
 *
 * **Creation order** is `order`: ZFS `createtxg`; btrfs the generation at
 * creation (`otransid`, `cgen` in `btrfs subvolume list -c`). Not btrfs's
 * `generation`, which grows when a subvolume is written to (a received one
 * is, after its creation), nor `ctransid`, which a snapshot copies from its
 * source (two snapshots with no write between them share it).
 *
 * **Base protection** is a {@link Pin}. ZFS keeps the last pushed snapshot's
 * identity in a bookmark (or a hold), and an incremental can be sent from
 * the bookmark after the snapshot is gone. btrfs has neither: `btrfs send -p`
 * needs the parent's whole tree, and the receiver looks the parent up by its
 * identity. A read-only snapshot zbk takes of the user's snapshot keeps the
 * tree, but it has a UUID of its own, so an incremental from it is only
 * receivable where *it* was received. So on btrfs zbk sends its own pin, not
 * the user's snapshot: `pin()` is called before the send, and the stream
 * (and the received snapshot) carries `pin.id`. On ZFS `pin.id` is the
 * snapshot's own guid, and pinning before or after the send is the same.
 *
 * Errors: every method throws the source's typed error (ZfsError, BtrfsError:
 * both ZbkErrors with exit code 7, `code`, `argv`, `exitStatus`, `signal` and
 * `stderrTail` — the last 2 KiB of what the tool said), and InvalidNameError
 * (a UsageError, exit 2) for a malformed name before anything is spawned. The
 * NOT_FOUND code (`ZFS_NOT_FOUND`, `BTRFS_NOT_FOUND`) means "that dataset or
 * snapshot does not exist".
 *
 * How the Zfs adapter (src/zfs/zfs.ts) maps onto this. The services reach
 * both tools through per-source ports (src/services/push/source.ts,
 * src/services/restore/target-port.ts), which use these methods on btrfs
 * and the ZFS equivalents below:
 *
 * | SnapshotSource | Zfs | callers |
 * | --- | --- | --- |
 * | `resolveDataset` | `assertDatasetName` + `exists` | push.checkUnconfiguredDatasets |
 * | `listSnapshots` | `listSnapshots` (guid → `id` as decimal, createtxg → `order`) | push (target, resume check), base-protection |
 * | `openSend` | `openSend(SendOptions)`; the recorded flag list replaces raw/compressed/largeBlocks/embeddedData (send-flags.ts `sendOptionsFor`) | push.uploadOnce |
 * | `estimateSendSize` | `estimateSendSize` | push (dry run, uploadOnce) |
 * | `pin` / `listPins` / `unpin` | `bookmark` / `listBookmarks` / `destroyBookmark`; in hold mode `hold`/`release` of tag `zbk`, recorded in the manifest (zfs-fuse cannot list holds) | base-protection moveBookmark/placeHold/dropHold |
 * | `resolveBase` | snapshot by guid, else bookmark by guid | base-protection.resolveBase |
 * | `receive` | `receive(target, input, {force, unmounted, onWritten})` | restore run (live and staged) |
 * | `listReceived` | `exists(target)` + `listSnapshots(target)`; `getSnapshot(target@name).guid` after a receive | restore syncReceived/finished/receiveFlags/finishReceive |
 * | `capabilities` | `capabilities()` (a subset; the full ZfsCapabilities stay ZFS-only) | push, doctor |
 *
 * Left ZFS-only (no btrfs counterpart, or restore-target lifecycle that the
 * wiring step decides per source): the `zbk-send` hold while a send runs
 * (btrfs: the kernel refuses to delete a subvolume that is being sent),
 * `isEncrypted` and raw sends, `getProperties` (guid/creation/keystatus of a
 * restore target), `mount`/`unmount`/`remount`, `createDataset`, `clone`,
 * receive `force` (-F) and `resumable` (-s).
 */
import type { Readable } from 'node:stream';

/** Which tool a source drives. */
export type SourceKind = 'zfs' | 'btrfs';

/** Identity of a snapshot: equal on the sender and on every receiver of it (see the module comment). */
export type SnapshotId = string;

/** A snapshot of one dataset, as {@link SnapshotSource.listSnapshots} returns it. */
export interface SourceSnapshot {
  /** The dataset it belongs to, as {@link SnapshotSource.resolveDataset} returned it. */
  dataset: string;
  /**
   * What users and the manifest call it, unique within the dataset: ZFS the
   * short name (`daily-2024-01-01`); btrfs the path relative to the mount
   * point the dataset is reached through (`.snapshots/12/snapshot`).
   */
  name: string;
  /** What the tool takes to send it: ZFS `pool/ds@snap`; btrfs the absolute path. */
  ref: string;
  id: SnapshotId;
  /** Creation order within the dataset (ZFS createtxg, btrfs otransid); larger is newer. */
  order: bigint;
  /** Creation time, whole seconds since the epoch. */
  creation: number;
}

/**
 * zbk's protection of a snapshot it sends, kept while that snapshot is the
 * base of the next incremental (see the module comment).
 */
export interface Pin {
  dataset: string;
  /** The user's snapshot it stands for (`name` null when the source can no longer tell: that snapshot was pruned). */
  snapshot: { id: SnapshotId; name: string | null };
  /**
   * The identity a stream of this pin carries and an incremental from it
   * names as its base: what the manifest records as pushed, and what the
   * received snapshot on a restore target carries. ZFS: `snapshot.id`.
   * btrfs: the pin subvolume's own UUID.
   */
  id: SnapshotId;
  /** What {@link SendRequest.snapshot} takes to send this pin (ZFS: the snapshot itself; btrfs: the pin). */
  sendOf: string;
  /** What {@link SendRequest.from} takes for an incremental from it (ZFS: bookmark or snapshot; btrfs: the pin). */
  sendFrom: string;
  /** What zbk keeps: ZFS `pool/ds#zbk-snap` (or `pool/ds@snap` held `zbk`); btrfs the pin's path. */
  ref: string;
}

export interface SendRequest {
  /** What to send: a {@link Pin.sendOf} (or a {@link SourceSnapshot.ref} on ZFS). */
  snapshot: string;
  /** Incremental base: a {@link Pin.sendFrom} or what {@link SnapshotSource.resolveBase} returned. */
  from?: string;
  /**
   * The exact optional flags, as recorded with the stream (manifest
   * `streams.send_flags`), from {@link SourceCapabilities.sendFlags}: a resume
   * must send the same bytes, so a flag this source cannot honour is an
   * error, never dropped. ZFS `-w -c -L -e`; btrfs `--proto=2`, `--compressed-data`.
   */
  flags?: readonly string[];
}

/**
 * A running send. The stream ends only after the tool exited 0; if it
 * fails, the stream is destroyed with the source's typed error (carrying
 * stderr), so a pipeline never mistakes a truncated stream for a complete
 * one. Destroying the stream kills the tool. src/zfs/types.ts re-exports it
 * for `zfs send`.
 */
export interface SendStream {
  stream: Readable;
  /** Resolves when the tool exited 0; rejects with the typed error otherwise (the KILLED code after `kill`). Safe to ignore. */
  done: Promise<void>;
  /** Kill the tool and destroy the stream (idempotent). */
  kill(): void;
  /** The spawned command line (names and flags only, never secrets). */
  argv: string[];
  /** Process id of the tool (undefined if it could not start). */
  pid: number | undefined;
}

export interface SourceReceiveOptions {
  /**
   * Called, in order, as bytes of the input have been written into the
   * tool's stdin (then in the kernel's pipe): the caller may reuse the memory
   * of everything up to the sum. Not called for bytes never written.
   */
  onWritten?: (bytes: number) => void;
}

/** A snapshot on a restore target. */
export interface ReceivedSnapshot {
  /** ZFS: the short name; btrfs: the subvolume's name in the target directory. */
  name: string;
  /** ZFS `pool/ds@snap`; btrfs the absolute path. */
  ref: string;
  /** The identity it carries: equal to the pushed {@link Pin.id} when it was received from zbk's stream. */
  id: SnapshotId;
  /** Creation order on the target (ZFS createtxg, btrfs otransid). */
  order: bigint;
  /** False for a snapshot taken on the target itself (ZFS cannot tell: always true there). */
  received: boolean;
  /**
   * btrfs, after a receive: the new subvolume's own UUID, the UUID of the
   * local subvolume it was made from (the incremental's parent as the
   * receiver found it by received UUID; null for a full stream) and its id.
   */
  uuid?: string;
  parentUuid?: string | null;
  subvolumeId?: bigint;
}

/** What a source can do, detected once. */
export interface SourceCapabilities {
  kind: SourceKind;
  /** The tool's version (`2.3.2`, `6.2`), or null when it does not say. */
  version: string | null;
  /** `estimateSendSize` can return a number (ZFS `send -nP`; btrfs never). */
  sendEstimate: boolean;
  /** How {@link SnapshotSource.pin} protects: ZFS `bookmark` or `hold`; btrfs `snapshot` (zbk's read-only snapshot). */
  pin: 'bookmark' | 'hold' | 'snapshot';
  /** The optional send flags this source can honour here, in the order the tool gets them. */
  sendFlags: readonly string[];
}

export interface SnapshotSource {
  readonly kind: SourceKind;

  /** Detect (once, then cached) what the installed tool and kernel can do. */
  capabilities(): Promise<SourceCapabilities>;

  /**
   * Validate a dataset name from the config or the command line and return
   * its canonical form (ZFS `pool/ds` unchanged; btrfs the real path of the
   * subvolume). InvalidNameError for a malformed one (nothing spawned); the
   * NOT_FOUND code when it does not exist; btrfs also BTRFS_NOT_BTRFS and
   * BTRFS_NOT_SUBVOLUME.
   */
  resolveDataset(name: string): Promise<string>;

  /**
   * Snapshots of the dataset itself, oldest first by `order`: ZFS the
   * dataset's snapshots (not its children's); btrfs the read-only subvolumes
   * whose parent UUID is the dataset's UUID and that are reachable under the
   * mount it is reached through. zbk's own pins are not in the list.
   */
  listSnapshots(dataset: string): Promise<SourceSnapshot[]>;

  /**
   * Start a send (full, or incremental from `from`). Names are validated
   * before anything is spawned. The flag list is honoured exactly or refused
   * (the UNSUPPORTED code).
   */
  openSend(request: SendRequest): Promise<SendStream>;

  /** Estimated stream size in bytes, or null where the source cannot estimate (`capabilities().sendEstimate`). */
  estimateSendSize(request: SendRequest): Promise<number | null>;

  /**
   * Pin `snapshot`, about to be sent (idempotent: pinning it again returns
   * the same pin). Send {@link Pin.sendOf}; record {@link Pin.id}.
   */
  pin(snapshot: SourceSnapshot): Promise<Pin>;

  /** zbk's pins of this dataset that the source can list (ZFS hold mode: none; the manifest records those holds). */
  listPins(dataset: string): Promise<Pin[]>;

  /** Drop a pin; one that is already gone is not an error. */
  unpin(pin: Pin): Promise<void>;

  /**
   * What an incremental from the pushed identity `id` can be sent from here
   * (a live snapshot or a pin with that identity), or null: the base is
   * gone and the next stream must be full.
   */
  resolveBase(dataset: string, id: SnapshotId): Promise<string | null>;

  /**
   * Receive `input` into `target` (ZFS a dataset or `pool/ds@snap`; btrfs an
   * existing directory on btrfs, where the stream's subvolume is created).
   * Resolves with the received snapshot. Rejects with the input's own error
   * if the input fails (the tool is killed first, so a cut stream is never
   * taken for a whole one), else with the typed error carrying stderr; what
   * a failed receive created is gone afterwards.
   */
  receive(target: string, input: Readable, opts?: SourceReceiveOptions): Promise<ReceivedSnapshot>;

  /** Snapshots on a restore target, oldest first; empty when the target does not exist. */
  listReceived(target: string): Promise<ReceivedSnapshot[]>;
}
