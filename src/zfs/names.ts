/**
 * Validation of ZFS names before anything is spawned.
 *
 * zfs is always spawned with argument arrays, so a shell never sees these
 * names; validation still matters because a name that starts with `-` is read
 * by zfs as an option (`-R` would turn a send into a recursive send), and
 * because names end up in the manifest and in log lines. We accept a strict
 * subset of what ZFS allows: the component characters of zfs_namecheck.c
 * (`A-Z a-z 0-9 _ - . :`) without the space, which ZFS permits but which is
 * far more likely to be a quoting mistake than a real dataset name.
 */
import { UsageError } from '../errors.js';

/** ZFS_MAX_DATASET_NAME_LEN is 256 including the terminating NUL. */
export const MAX_NAME_LENGTH = 255;

const COMPONENT = /^[A-Za-z0-9_.:-]+$/;

/** A name (dataset, snapshot, bookmark or hold tag) that zbk refuses to pass to zfs. */
export class InvalidNameError extends UsageError {
  /** The rejected input, unmodified. */
  readonly input: string;

  constructor(kind: string, input: unknown, reason: string) {
    super(`invalid ${kind} ${quoteName(input)}: ${reason}`, 'INVALID_NAME');
    this.input = typeof input === 'string' ? input : String(input);
  }
}

/**
 * Quote untrusted input for a one-line message: JSON escaping makes control
 * characters and newlines visible, and long input is cut so a hostile name
 * cannot flood the terminal.
 */
export function quoteName(input: unknown): string {
  const s = typeof input === 'string' ? input : String(input);
  const cut = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return JSON.stringify(cut);
}

function checkComponent(kind: string, whole: string, part: string, what: string): void {
  if (part.length === 0) throw new InvalidNameError(kind, whole, `empty ${what}`);
  if (part === '.' || part === '..') throw new InvalidNameError(kind, whole, `"${part}" is not allowed as a ${what}`);
  if (part.startsWith('-')) throw new InvalidNameError(kind, whole, `${what} must not start with "-"`);
  if (!COMPONENT.test(part)) {
    throw new InvalidNameError(kind, whole, `${what} may only contain letters, digits, "_", "-", "." and ":"`);
  }
}

function checkString(kind: string, name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new InvalidNameError(kind, name, 'not a string');
  if (name.length === 0) throw new InvalidNameError(kind, name, 'empty name');
  if (name.length > MAX_NAME_LENGTH) throw new InvalidNameError(kind, name, `longer than ${MAX_NAME_LENGTH} characters`);
}

function checkDatasetPart(kind: string, whole: string, dataset: string): void {
  const parts = dataset.split('/');
  parts.forEach((p, i) => checkComponent(kind, whole, p, i === 0 ? 'pool name' : 'dataset component'));
  // zpool(8): pool names must begin with a letter.
  if (!/^[A-Za-z]/.test(parts[0]!)) throw new InvalidNameError(kind, whole, 'pool name must start with a letter');
}

/** Throws InvalidNameError unless `name` is a filesystem/volume name like `pool/a/b`. Returns it. */
export function assertDatasetName(name: unknown): string {
  checkString('dataset name', name);
  if (name.includes('@') || name.includes('#')) {
    throw new InvalidNameError('dataset name', name, 'a dataset name must not contain "@" or "#" (that is a snapshot or bookmark)');
  }
  checkDatasetPart('dataset name', name, name);
  return name;
}

/** Throws InvalidNameError unless `name` is a short snapshot name (the part after `@`). Returns it. */
export function assertShortSnapshotName(name: unknown): string {
  checkString('snapshot name', name);
  if (name.includes('@') || name.includes('#') || name.includes('/')) {
    throw new InvalidNameError('snapshot name', name, 'a short snapshot name must not contain "@", "#" or "/"');
  }
  checkComponent('snapshot name', name, name, 'snapshot name');
  return name;
}

function splitOnce(kind: string, name: string, sep: '@' | '#'): { dataset: string; shortName: string } {
  const other = sep === '@' ? '#' : '@';
  const at = name.indexOf(sep);
  if (at < 0) throw new InvalidNameError(kind, name, `missing "${sep}" (expected pool/dataset${sep}name)`);
  if (name.indexOf(sep, at + 1) >= 0) throw new InvalidNameError(kind, name, `more than one "${sep}"`);
  if (name.includes(other)) throw new InvalidNameError(kind, name, `must not contain "${other}"`);
  const dataset = name.slice(0, at);
  const shortName = name.slice(at + 1);
  checkDatasetPart(kind, name, dataset);
  if (shortName.includes('/')) throw new InvalidNameError(kind, name, `"/" is not allowed after "${sep}"`);
  checkComponent(kind, name, shortName, `${kind} part after "${sep}"`);
  return { dataset, shortName };
}

/** Throws InvalidNameError unless `name` is a full snapshot name `pool/a@snap`. Returns it. */
export function assertSnapshotName(name: unknown): string {
  checkString('snapshot name', name);
  splitOnce('snapshot name', name, '@');
  return name;
}

/** Throws InvalidNameError unless `name` is a full bookmark name `pool/a#mark`. Returns it. */
export function assertBookmarkName(name: unknown): string {
  checkString('bookmark name', name);
  splitOnce('bookmark name', name, '#');
  return name;
}

/** Splits a full snapshot name into its dataset and short name (validating it). */
export function splitSnapshotName(name: string): { dataset: string; shortName: string } {
  checkString('snapshot name', name);
  return splitOnce('snapshot name', name, '@');
}

/** Splits a full bookmark name into its dataset and short name (validating it). */
export function splitBookmarkName(name: string): { dataset: string; shortName: string } {
  checkString('bookmark name', name);
  return splitOnce('bookmark name', name, '#');
}

/** Throws InvalidNameError unless `tag` is a usable `zfs hold` tag. Returns it. */
export function assertHoldTag(tag: unknown): string {
  checkString('hold tag', tag);
  checkComponent('hold tag', tag, tag, 'hold tag');
  return tag;
}

/** Accepts a dataset, snapshot or bookmark name (for `exists` and `destroy`). Returns it. */
export function assertAnyName(name: unknown): string {
  checkString('ZFS name', name);
  if (name.includes('@')) return assertSnapshotName(name);
  if (name.includes('#')) return assertBookmarkName(name);
  return assertDatasetName(name);
}

/** True when `name` passes {@link assertDatasetName}. */
export function isValidDatasetName(name: unknown): boolean {
  try {
    assertDatasetName(name);
    return true;
  } catch {
    return false;
  }
}

/** True when `name` passes {@link assertSnapshotName}. */
export function isValidSnapshotName(name: unknown): boolean {
  try {
    assertSnapshotName(name);
    return true;
  } catch {
    return false;
  }
}
