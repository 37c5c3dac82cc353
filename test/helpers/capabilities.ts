/** ZFS capability sets for unit tests that decide by what the ZFS can do. */
import type { ZfsCapabilities } from '../../src/zfs/types.js';

/** Everything OpenZFS 2.x has. */
export const openzfsCaps: ZfsCapabilities = {
  implementation: 'openzfs', version: '2.3.4', rawSend: true, compressedSend: true, largeBlocks: true, embeddedData: true,
  sendEstimate: true, resumeTokens: true, bookmarks: true, holdsList: true, listParsable: true,
};

/** zfs-fuse 0.7: none of the optional features. */
export const zfsFuseCaps: ZfsCapabilities = {
  ...openzfsCaps, implementation: 'zfs-fuse', version: null, rawSend: false, compressedSend: false, largeBlocks: false, embeddedData: false,
  sendEstimate: false, resumeTokens: false, bookmarks: false, holdsList: false, listParsable: false,
};
