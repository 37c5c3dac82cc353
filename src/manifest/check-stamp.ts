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
 * files' times are more than `RACY_MS` older than the check's start, taken
 * from the same file system's clock (the mtime of the stamp's temp file,
 * made before the check: on NFS the server's clock, not this host's). Any
 * later write then carries a time at least that much newer, which differs
 * at any granularity up to a second.
 *
 * The -wal is looked for beside the database's real path, where SQLite
 * keeps it when `manifest.db` is a symlink.
 *
 * The stamp is a cache and never a reason to trust more: a missing, torn,
 * foreign or stale stamp, or one that is not a private regular file of
 * this user, means "check again"; failing to write it (a read-only or full
 * state directory) changes nothing but speed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';

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
  const real = realpathSync(dbPath);
  const db = one(real, 100, false);
  const wal = one(`${real}-wal`, 32, true);
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

/** Whether `state` may be stamped for a check that started at `fsNowMs` (the file system's clock): both files unchanged for more than RACY_MS before it. */
export function settled(state: FileState, fsNowMs: number): boolean {
  return fsNowMs - state.newestChangeMs > RACY_MS;
}

export interface StampOptions {
  /** The file system's time at the check's start, instead of the temp file's mtime (tests). */
  fsNowMs?: number;
  /** Wall-clock now, for the hour (tests). */
  nowMs?: number;
}

/**
 * Run `check` (quick_check; it throws on damage) unless a stamp covers the
 * files' present state; after a pass, stamp the state seen before it when
 * that state had settled and nothing wrote the files while it ran.
 * @returns whether `check` ran
 */
export function checkUnlessStamped(dbPath: string, check: () => void, opts: StampOptions = {}): boolean {
  const nowMs = opts.nowMs ?? Date.now();
  let state: FileState | null = null;
  try {
    state = fileState(dbPath);
  } catch {
    // the files cannot be looked at closely (permissions): check, stamp nothing
  }
  if (state && stampCovers(dbPath, state, nowMs)) return false;
  const pending = state ? beginStamp(dbPath) : null;
  try {
    check();
    const fsNowMs = opts.fsNowMs ?? pending?.fsNowMs;
    if (pending && state && fsNowMs !== undefined && settled(state, fsNowMs) && sameState(dbPath, state)) {
      commitStamp(dbPath, pending, { v: 2, state: state.key, checkedAt: nowMs });
    }
  } finally {
    if (pending) discard(pending);
  }
  return true;
}

function sameState(dbPath: string, state: FileState): boolean {
  try {
    return fileState(dbPath).key === state.key;
  } catch {
    return false;
  }
}

interface PendingStamp {
  tmp: string;
  fd: number | null;
  /** The temp file's mtime: the file system's clock when the check starts. */
  fsNowMs: number;
}

/**
 * A new temp file beside the stamp (O_EXCL, a random name, never through a
 * symlink, 0600), made before the check so its mtime dates the check's
 * start on the file system's clock. Null when it cannot be made (a
 * read-only or full state directory): nothing is stamped then.
 */
function beginStamp(dbPath: string): PendingStamp | null {
  const pending: PendingStamp = { tmp: `${stampPath(dbPath)}.${randomBytes(6).toString('hex')}.tmp`, fd: null, fsNowMs: 0 };
  try {
    pending.fd = openSync(pending.tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    pending.fsNowMs = fstatSync(pending.fd).mtimeMs;
    return pending;
  } catch {
    discard(pending);
    return null;
  }
}

/** Write the stamp into the temp file and rename it over the stamp path (which replaces a planted symlink, not its target). Best effort. */
function commitStamp(dbPath: string, pending: PendingStamp, stamp: Stamp): void {
  try {
    writeSync(pending.fd!, JSON.stringify(stamp));
    closeSync(pending.fd!);
    pending.fd = null;
    renameSync(pending.tmp, stampPath(dbPath));
  } catch {
    // a full state directory: no stamp, the next open checks
  }
}

/** Close the temp file and remove it (after a rename there is nothing at its name). */
function discard(pending: PendingStamp): void {
  try {
    if (pending.fd !== null) closeSync(pending.fd);
    pending.fd = null;
    rmSync(pending.tmp, { force: true });
  } catch {
    // nothing more to tidy
  }
}
