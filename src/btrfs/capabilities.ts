/**
 * What btrfs-progs and the kernel can do, from `btrfs --version`, `btrfs
 * send --help` and /sys/fs/btrfs/features/send_stream_version. A send
 * stream of protocol 2 (btrfs-progs ≥ 6.0, kernel ≥ 6.0) can carry
 * compressed extents as they are on disk (`--compressed-data`); protocol 1
 * (the default of `btrfs send`) is what every receiver reads.
 */
import { parseBtrfsVersion, parseSendHelp, parseSendStreamVersion } from './parse.js';
import type { BtrfsCapabilities } from './types.js';

/** The optional send flags zbk knows, in the order btrfs gets them. */
export const BTRFS_SEND_FLAGS = ['--proto=2', '--compressed-data'] as const;

/**
 * Decide capabilities from the probes: the `btrfs --version` text, the
 * `btrfs send --help` text and the kernel's send_stream_version file (null
 * when absent: a kernel before 5.19, or btrfs not loaded yet).
 */
export function detectBtrfsCapabilities(versionText: string, sendHelp: string, sendStreamVersion: string | null): BtrfsCapabilities {
  const help = parseSendHelp(sendHelp);
  const kernelSendProto = parseSendStreamVersion(sendStreamVersion);
  const v2 = help.proto && kernelSendProto >= 2;
  const compressedData = help.compressedData && kernelSendProto >= 2;
  return {
    version: parseBtrfsVersion(versionText),
    kernelSendProto,
    protoFlag: help.proto,
    compressedData,
    sendFlags: [...(v2 ? ['--proto=2'] : []), ...(compressedData ? ['--compressed-data'] : [])],
  };
}
