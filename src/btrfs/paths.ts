/**
 * Validation of the paths zbk passes to `btrfs`. btrfs is spawned with
 * argument arrays, so no shell sees them; the rules are there because a
 * relative path could be read as an option (`-p`), because the paths end up
 * in the manifest and in log lines, and because btrfs prints them one per
 * line. Accepted: absolute, normalized paths (no `.`/`..`/empty components,
 * no trailing `/`) without control characters and without white space —
 * btrfs allows a space in a name, but in a dataset named on a command line
 * or in a config it is far more likely a quoting mistake (the same rule as
 * zfs names, src/zfs/names.ts).
 */
import { InvalidNameError } from '../zfs/names.js';

/** PATH_MAX is 4096 including the terminating NUL. */
export const MAX_PATH_LENGTH = 4095;
/** A file name is at most 255 bytes (BTRFS_NAME_LEN). */
export const MAX_NAME_BYTES = 255;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]/;
const SPACE = /\s/u;

/** Throws InvalidNameError unless `path` is an absolute normalized path zbk passes to btrfs. Returns it. */
export function assertBtrfsPath(path: unknown, kind = 'btrfs path'): string {
  if (typeof path !== 'string') throw new InvalidNameError(kind, path, 'not a string');
  if (path.length === 0) throw new InvalidNameError(kind, path, 'empty path');
  if (CONTROL.test(path)) throw new InvalidNameError(kind, path, 'contains a control character (NUL, newline, …)');
  if (SPACE.test(path)) throw new InvalidNameError(kind, path, 'contains white space (btrfs allows it, zbk does not: rename the subvolume, or check the quoting)');
  if (!path.startsWith('/')) throw new InvalidNameError(kind, path, 'must be an absolute path (starting with "/")');
  if (Buffer.byteLength(path) > MAX_PATH_LENGTH) throw new InvalidNameError(kind, path, `longer than ${MAX_PATH_LENGTH} bytes`);
  if (path === '/') return path;
  if (path.endsWith('/')) throw new InvalidNameError(kind, path, 'must not end with "/"');
  for (const part of path.slice(1).split('/')) {
    if (part.length === 0) throw new InvalidNameError(kind, path, 'contains "//"');
    if (part === '.' || part === '..') throw new InvalidNameError(kind, path, `"${part}" is not allowed as a path component`);
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) throw new InvalidNameError(kind, path, `a component is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return path;
}

/** Throws InvalidNameError unless `name` is one path component (a subvolume name to create in a directory). Returns it. */
export function assertBtrfsName(name: unknown, kind = 'subvolume name'): string {
  if (typeof name !== 'string') throw new InvalidNameError(kind, name, 'not a string');
  if (name.length === 0) throw new InvalidNameError(kind, name, 'empty name');
  if (name.includes('/')) throw new InvalidNameError(kind, name, 'must not contain "/"');
  if (name.startsWith('-')) throw new InvalidNameError(kind, name, 'must not start with "-"');
  assertBtrfsPath(`/${name}`, kind);
  return name;
}

/** True when `path` passes {@link assertBtrfsPath}. */
export function isValidBtrfsPath(path: unknown): boolean {
  try {
    assertBtrfsPath(path);
    return true;
  } catch {
    return false;
  }
}

/** `child` relative to `parent` when it is `parent` itself ('') or below it, else null (component-wise, not by string prefix). */
export function relativeBelow(parent: string, child: string): string | null {
  if (parent === '/') return child.startsWith('/') ? child.slice(1) : null;
  if (child === parent) return '';
  return child.startsWith(`${parent}/`) ? child.slice(parent.length + 1) : null;
}
