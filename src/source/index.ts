/** The snapshot-source layer: the interface ZFS and btrfs implement, and the process plumbing they share. */
export * from './types.js';
export * from './child.js';
