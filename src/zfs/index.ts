/** Public surface of the zfs adapter. */
export * from './errors.js';
export * from './names.js';
export * from './types.js';
export { detectCapabilities, parseUsage } from './capabilities.js';
export * from './parse.js';
export { Zfs, type ZfsCommands } from './zfs.js';
