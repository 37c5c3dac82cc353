/**
 * The quick_check stamp: a note beside the manifest (`manifest.db-checked`)
 * that `PRAGMA quick_check` passed on exactly the bytes now on disk.
 *
 * Why: quick_check reads the whole database — 0.2 s of every command at
 * 50,000 streams — and a monitor running `zbk check` every few minutes, or
 * a user running `zbk status` twice, would pay it on a file nothing has
 * touched since the last check. An open may skip the check when
 *
 * - the stamp names the same file (device and inode) with the same size,
 *   mtime and ctime, and the same for its `-wal` (or its absence): any write
 *   to either changes ctime, which no user-space call can set back; and
 * - the check it records passed less than `STAMP_FRESH_MS` ago, so media
 *   decay under an unchanged file is found within that time too.
 *
 * The stamp is a cache and never a reason to trust more: a missing, torn,
 * foreign or stale stamp means "check again", and failing to write it (a
 * read-only or full state directory) changes nothing but speed.
 */
import { readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';

/** How long a passed check stands for an unchanged file. */
export const STAMP_FRESH_MS = 60 * 60 * 1000;

interface Stamp {
  v: 1;
  /** The database's and the -wal's identity and change times, as `fileState` renders them. */
  state: string;
  /** When the check passed (ms since the epoch, wall clock). */
  checkedAt: number;
}

export function stampPath(dbPath: string): string {
  return `${dbPath}-checked`;
}

/** A file's identity, size and change times; `empty` for a missing or empty file when `emptyIsNone`. */
function one(path: string, emptyIsNone: boolean): string {
  try {
    const s = statSync(path, { bigint: true });
    if (emptyIsNone && s.size === 0n) return 'empty';
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && emptyIsNone) return 'empty';
    throw err;
  }
}

/**
 * The database file and its -wal as a string that changes with any write to
 * either. An empty -wal is the same as none: SQLite creates one at each
 * first read and removes it at the last close, and it holds no data then.
 */
export function fileState(dbPath: string): string {
  return `${one(dbPath, false)} ${one(`${dbPath}-wal`, true)}`;
}

/** Whether a check that passed on `state` less than STAMP_FRESH_MS before `nowMs` is on record. */
export function stampCovers(dbPath: string, state: string, nowMs: number): boolean {
  let stamp: Partial<Stamp>;
  try {
    stamp = JSON.parse(readFileSync(stampPath(dbPath), 'utf8')) as Partial<Stamp>;
  } catch {
    return false;
  }
  return stamp.v === 1 && stamp.state === state && typeof stamp.checkedAt === 'number' && nowMs >= stamp.checkedAt && nowMs - stamp.checkedAt < STAMP_FRESH_MS;
}

/** Record that the check passed on `state` at `nowMs`. Best effort: any failure leaves no stamp. */
export function writeStamp(dbPath: string, state: string, nowMs: number): void {
  const path = stampPath(dbPath);
  const tmp = `${path}.${process.pid}.tmp`;
  const stamp: Stamp = { v: 1, state, checkedAt: nowMs };
  try {
    writeFileSync(tmp, JSON.stringify(stamp), { mode: 0o600 });
    renameSync(tmp, path);
  } catch {
    // A read-only or full state directory: no stamp, the next open checks. An old stamp left behind names another state.
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was created
    }
  }
}
