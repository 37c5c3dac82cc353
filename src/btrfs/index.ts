/** Public surface of the btrfs adapter. */
export * from './errors.js';
export * from './paths.js';
export * from './types.js';
export { BTRFS_SEND_FLAGS, detectBtrfsCapabilities } from './capabilities.js';
export * from './parse.js';
export { Btrfs, PIN_PREFIX, PIN_ROOT, type BtrfsMount, type BtrfsOptions } from './btrfs.js';
