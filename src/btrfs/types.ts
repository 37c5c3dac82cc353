/** Data types of the btrfs adapter. */
import type { SourceSnapshot } from '../source/types.js';

/** One subvolume as `btrfs subvolume show PATH` describes it. */
export interface SubvolumeInfo {
  /** The path btrfs prints on the first line: relative to the filesystem's top level (`data`, `snaps/s1`), `/` for the top level itself. */
  fsPath: string;
  /** `Name:` (`<FS_TREE>` for the top level). */
  name: string;
  uuid: string;
  /** UUID of the subvolume it is a snapshot of, or null. */
  parentUuid: string | null;
  /** UUID of the sent subvolume it was received from, or null. */
  receivedUuid: string | null;
  /** `Creation time:` (otime), seconds since the epoch; null when btrfs prints `-`. */
  creation: number | null;
  subvolumeId: bigint;
  /** `Generation:` the transaction that last changed it. */
  generation: bigint;
  /** `Gen at creation:` (otransid). */
  otransid: bigint;
  /** `Top level ID:` the subvolume whose tree holds its directory entry. */
  topLevelId: bigint;
  /** `Flags:` includes `readonly`. */
  readOnly: boolean;
  /** `Snapshot(s):` paths as printed (relative to the top level). */
  snapshots: string[];
}

/** One line of `btrfs subvolume list -a [-s] -u -q -R -c -g`. */
export interface SubvolumeListEntry {
  subvolumeId: bigint;
  generation: bigint;
  /** `cgen`: otransid. */
  otransid: bigint;
  topLevelId: bigint;
  /** `otime` (only with `-s`, printed in the child's TZ, which zbk sets to UTC), seconds since the epoch. */
  otime: number | null;
  parentUuid: string | null;
  receivedUuid: string | null;
  uuid: string;
  /** As printed, `<FS_TREE>/` prefix included. */
  path: string;
}

/** One line of /proc/self/mountinfo. */
export interface MountInfo {
  mountId: number;
  /** The path inside the filesystem that is mounted (`/`, or `/data` for `-o subvol=data`). */
  root: string;
  mountPoint: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** What the installed btrfs-progs and the kernel can do. */
export interface BtrfsCapabilities {
  /** btrfs-progs version (`6.2`), or null. */
  version: string | null;
  /** Highest send stream version the kernel writes (/sys/fs/btrfs/features/send_stream_version; 1 where absent). */
  kernelSendProto: number;
  /** `btrfs send --proto N` is documented by `btrfs send --help`. */
  protoFlag: boolean;
  /** `btrfs send --compressed-data` is documented (and the kernel writes protocol 2, which it needs). */
  compressedData: boolean;
  /** The optional send flags this machine honours: `--proto=2` and `--compressed-data` where both sides allow. */
  sendFlags: string[];
}

/** A read-only snapshot of a btrfs dataset (a subvolume). */
export interface BtrfsSnapshot extends SourceSnapshot {
  uuid: string;
  parentUuid: string | null;
  receivedUuid: string | null;
  subvolumeId: bigint;
  generation: bigint;
}
