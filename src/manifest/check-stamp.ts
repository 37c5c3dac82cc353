/**
 * The quick_check stamp: a note beside the manifest (`manifest.db-checked`)
 * that `PRAGMA quick_check` passed on the database as it is now on disk.
 *
 * Why: quick_check reads the whole database — 0.2 s of every command at
 * 50,000 streams — and a monitor running `zbk check` every few minutes, or
 * a user running `zbk status` twice, would pay it on a file nothing has
 * touched since the last check. An open may skip the check when the stamp
 * records, for the database file and its `-wal` (an empty or missing one
 * counts as none), the same device, inode, size, mtime and ctime and the
 * same header bytes (the database's first 100; the WAL's first 32, whose
 * checkpoint sequence and salts change at every WAL restart), and the
 * check passed less than `STAMP_FRESH_MS` ago, so media decay under an
 * unchanged file is found within that time too.
 *
 * File times come from a coarse clock (a tick of 1–10 ms; one second on
 * some filesystems), so two writes in one tick can leave them equal. As in
 * git's "racy clean" rule, a state is therefore stamped only when both
 * files' times are more than `RACY_MS` old when the check starts: any later
 * write then stamps a time at least that much newer, which differs at any
 * granularity up to a second.
 *
 * The stamp is a cache and never a reason to trust more: a missing, torn,
 * foreign or stale stamp, or one that is not a private regular file of
 * this user, means "check again"; failing to write it (a read-only or full
 * state directory) changes nothing but speed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';

/** How long a passed check stands for an unchanged file. */
export const STAMP_FRESH_MS = 60 * 60 * 1000;
/** A file written less than this long ago may be written again within the same timestamp: not stamped. */
export const RACY_MS = 2000;

interface Stamp {
  v: 2;
  /** What `fileState` returned before the check. */
  state: string;
  /** When the check passed (ms since the epoch, wall clock). */
  checkedAt: number;
}

export interface FileState {
  /** Identity, times and header bytes of the database and its -wal. */
  key: string;
  /** The newest mtime or ctime of the two files (ms since the epoch). */
  newestChangeMs: number;
}

export function stampPath(dbPath: string): string {
  return `${dbPath}-checked`;
}

/** Open for reading without following a symlink, or null when missing. */
function openNoFollow(path: string): number | null {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** One file's identity, size, times and first `headerBytes` bytes; `empty` for a missing or empty -wal. */
function one(path: string, headerBytes: number, isWal: boolean): { key: string; changedMs: number } {
  let fd: number;
  try {
    // Following a symlink, as SQLite does.
    fd = openSync(path, 'r');
  } catch (err) {
    if (isWal && (err as NodeJS.ErrnoException).code === 'ENOENT') return { key: 'empty', changedMs: 0 };
    throw err;
  }
  try {
    const s = fstatSync(fd, { bigint: true });
    if (isWal && s.size === 0n) return { key: 'empty', changedMs: 0 };
    const head = Buffer.alloc(headerBytes);
    const n = readSync(fd, head, 0, headerBytes, 0);
    const changedMs = Number((s.mtimeNs > s.ctimeNs ? s.mtimeNs : s.ctimeNs) / 1_000_000n);
    return { key: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${head.subarray(0, n).toString('hex')}`, changedMs };
  } finally {
    closeSync(fd);
  }
}

/** The database file and its -wal: a key that changes with any write to either, and how recent the newest change is. */
export function fileState(dbPath: string): FileState {
  const db = one(dbPath, 100, false);
  const wal = one(`${dbPath}-wal`, 32, true);
  return { key: `${db.key} ${wal.key}`, newestChangeMs: Math.max(db.changedMs, wal.changedMs) };
}

/** Whether a check that passed on `state` less than STAMP_FRESH_MS before `nowMs` is on record, in a private file of this user. */
export function stampCovers(dbPath: string, state: FileState, nowMs: number): boolean {
  let stamp: Partial<Stamp>;
  try {
    const fd = openNoFollow(stampPath(dbPath));
    if (fd === null) return false;
    try {
      const s = fstatSync(fd);
      if (!s.isFile() || (s.mode & 0o077) !== 0 || (process.geteuid && s.uid !== process.geteuid()) || s.size > 4096) return false;
      const buf = Buffer.alloc(s.size);
      const n = readSync(fd, buf, 0, buf.length, 0);
      stamp = JSON.parse(buf.subarray(0, n).toString('utf8')) as Partial<Stamp>;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  return stamp.v === 2 && stamp.state === state.key && typeof stamp.checkedAt === 'number' && nowMs >= stamp.checkedAt && nowMs - stamp.checkedAt < STAMP_FRESH_MS;
}

/** Whether `state` may be stamped at `nowMs`: both files unchanged for more than RACY_MS. */
export function settled(state: FileState, nowMs: number): boolean {
  return nowMs - state.newestChangeMs > RACY_MS;
}

/**
 * Record that the check passed on `state` at `nowMs`. The temp file is new
 * (O_EXCL, a random name, never through a symlink) and 0600; renaming it
 * replaces whatever is at the stamp path without following it. Best effort:
 * any failure leaves no new stamp.
 */
export function writeStamp(dbPath: string, state: FileState, nowMs: number): void {
  const path = stampPath(dbPath);
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const stamp: Stamp = { v: 2, state: state.key, checkedAt: nowMs };
  let fd: number | undefined;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    writeSync(fd, JSON.stringify(stamp));
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch {
    // A read-only or full state directory: no stamp, the next open checks. An old stamp left behind names another state.
    try {
      if (fd !== undefined) closeSync(fd);
      rmSync(tmp, { force: true });
    } catch {
      // nothing was created
    }
  }
}
