/** Data types of the zfs adapter. */

/** What the installed ZFS can do. Detected once; the rest of zbk asks, never guesses. */
export interface ZfsCapabilities {
  implementation: 'openzfs' | 'zfs-fuse' | 'unknown';
  /** e.g. `2.2.2-0ubuntu9` for OpenZFS; null when there is no `zfs version`. */
  version: string | null;
  /** `zfs send -w` (raw, for natively encrypted datasets). */
  rawSend: boolean;
  /** `zfs send -c`. */
  compressedSend: boolean;
  /** `zfs send -L`. */
  largeBlocks: boolean;
  /** `zfs send -e`. */
  embeddedData: boolean;
  /** `zfs send -nP` prints a size estimate. */
  sendEstimate: boolean;
  /** `zfs receive -s` and `zfs send -t <token>`. */
  resumeTokens: boolean;
  /** `zfs bookmark` and `zfs send -i pool/ds#bookmark`. */
  bookmarks: boolean;
  /** `zfs holds` lists the tags (zfs-fuse has hold/release but its `holds` fails). */
  holdsList: boolean;
  /** `zfs list -p`. */
  listParsable: boolean;
}

/** A snapshot of one dataset, with its exact identifiers. */
export interface Snapshot {
  /** Full name `pool/ds@snap`. */
  name: string;
  /** `pool/ds`. */
  dataset: string;
  /** `snap`. */
  shortName: string;
  /** 64-bit; never a JS number. */
  guid: bigint;
  /** 64-bit transaction group; orders snapshots of one dataset. */
  createtxg: bigint;
  /** Creation time, seconds since the epoch. */
  creation: number;
  /** Bytes unique to this snapshot. */
  used: number;
  /** Bytes referenced. */
  referenced: number;
}

/** A bookmark (OpenZFS only). */
export interface Bookmark {
  /** Full name `pool/ds#mark`. */
  name: string;
  dataset: string;
  shortName: string;
  guid: bigint;
  createtxg: bigint;
  creation: number;
}

/** One hold on a snapshot as listed by `zfs holds -H`. */
export interface Hold {
  snapshot: string;
  tag: string;
  /** As zfs printed it (a date, or seconds with `-p`). */
  timestamp: string;
}

export interface SendOptions {
  /** Full snapshot name `pool/ds@snap`. */
  snapshot: string;
  /** Incremental base: full snapshot name (`pool/ds@base`) or bookmark (`pool/ds#mark`). */
  from?: string;
  /** `-w`: raw send (keeps native encryption). Dropped where unsupported (no native encryption there). */
  raw?: boolean;
  /** `-c`: keep on-disk compression. Dropped where unsupported. */
  compressed?: boolean;
  /** `-L`: allow blocks > 128 KiB. Dropped where unsupported. */
  largeBlocks?: boolean;
  /** `-e`: embedded data blocks. Dropped where unsupported. */
  embeddedData?: boolean;
}

/**
 * A running `zfs send`, in the shape every snapshot source's send has
 * (src/source/types.ts). It ends only after zfs exited 0; if zfs fails, the
 * stream is destroyed with the ZfsError, so a pipeline never mistakes a
 * truncated stream for a complete one. Destroying it kills zfs; after
 * `kill()`, `done` rejects with code ZFS_KILLED.
 */
export type { SendStream } from '../source/types.js';

export interface ReceiveOptions {
  /** `-F`: roll back the target to its latest snapshot first (needed when it was modified, e.g. atime). */
  force?: boolean;
  /** `-s`: keep partial state for a resume token, only where supported. */
  resumable?: boolean;
  /** `-u`: do not mount the received file system (nothing then touches it between receives). */
  unmounted?: boolean;
  /**
   * Called, in order, as bytes of the input have been written into zfs's
   * stdin (they are then in the kernel's pipe, no longer in this process's
   * memory): the caller may reuse the memory of everything up to the sum.
   * Not called for bytes that were never written (zfs gone first).
   */
  onWritten?: (bytes: number) => void;
}
