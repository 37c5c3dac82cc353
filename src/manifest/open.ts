/**
 * Opening a manifest database file safely: a damaged file is refused with
 * MANIFEST_CORRUPT (never replaced by a fresh database), and a new database
 * is created fully migrated under a temporary name and then linked into
 * place, so a legitimate manifest is never an empty or half-initialised file.
 *
 * File modes: the database, its -wal and -shm are 0600 whatever the umask.
 * A new database file is created 0600 before SQLite opens it (SQLite gives
 * the -wal and -shm it creates the database file's mode), and an existing
 * one wider than 0600 (from an older zbk: 0644 under umask 022) is narrowed
 * when opened, with its -wal and -shm.
 */
import { chmodSync, closeSync, existsSync, fchmodSync, fstatSync, linkSync, openSync, readSync, realpathSync, rmSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ManifestError } from '../errors.js';
import { corruptMessage } from './errors.js';
import { migrate } from './schema.js';
import { checkUnlessStamped } from './check-stamp.js';

const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

function corrupt(path: string, detail: string): ManifestError {
  return new ManifestError(corruptMessage(path, detail), 'MANIFEST_CORRUPT');
}

/**
 * Cheap structural checks on the file header before SQLite sees the file:
 * SQLite happily treats an empty file as a new database, and reads past the
 * end of a truncated one as zeros.
 */
export function checkHeader(path: string): void {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) throw corrupt(path, 'the file is empty');
    const head = Buffer.alloc(100);
    const n = readSync(fd, head, 0, 100, 0);
    if (n < 100 || !head.subarray(0, 16).equals(MAGIC)) throw corrupt(path, 'not an SQLite database');
    const rawPageSize = head.readUInt16BE(16);
    const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) throw corrupt(path, 'invalid page size in the header');
    // The in-header page count is valid only when the two change counters agree.
    const pages = head.readUInt32BE(28);
    if (head.readUInt32BE(24) === head.readUInt32BE(92) && pages > 0 && pages * pageSize > size) {
      throw corrupt(path, `truncated: ${size} bytes, the header says ${pages * pageSize}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** An empty file at `path`, mode 0600 whatever the umask (SQLite takes an empty file as a new database). */
function createPrivate(path: string): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}

/** Narrow the database file and its -wal/-shm to 0600 where group or others have bits. Best effort: not our file, or a read-only filesystem, stays as it is. */
function narrowModes(path: string): void {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    // opening decides
  }
  // SQLite keeps the -wal and -shm beside the real file when `path` is a symlink.
  for (const p of [path, `${real}-wal`, `${real}-shm`]) {
    try {
      if ((statSync(p).mode & 0o077) !== 0) chmodSync(p, 0o600);
    } catch {
      // missing, not ours (EPERM) or read-only (EROFS): opening decides
    }
  }
}

function isSqliteCorruption(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB)/.test(code);
}

/** Run quick_check; throws MANIFEST_CORRUPT when it reports anything. */
export function quickCheck(db: Database.Database, path: string): void {
  let rows: unknown[];
  try {
    rows = db.pragma('quick_check') as unknown[];
  } catch (err) {
    if (isSqliteCorruption(err)) throw corrupt(path, (err as Error).message);
    throw err;
  }
  const msgs = rows.map((r) => String(Object.values(r as Record<string, unknown>)[0]));
  if (msgs.length !== 1 || msgs[0] !== 'ok') throw corrupt(path, msgs.slice(0, 3).join('; '));
}

/**
 * Open an existing manifest file (header check + quick_check, skipped when
 * it passed within the hour on the same bytes), or throw MANIFEST_CORRUPT.
 * Does not migrate.
 */
export function openExisting(path: string, readonly: boolean): Database.Database {
  checkHeader(path);
  narrowModes(path);
  let db: Database.Database;
  try {
    db = new Database(path, { readonly, fileMustExist: true, timeout: 10_000 });
  } catch (err) {
    if (isSqliteCorruption(err)) throw corrupt(path, (err as Error).message);
    throw err;
  }
  try {
    checkOpened(db, path);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/**
 * quick_check, unless it passed within the hour on this very state
 * (check-stamp.ts: a pass is stamped only when the files had settled before
 * it and nothing wrote them while it ran).
 */
function checkOpened(db: Database.Database, path: string): void {
  // A first read makes SQLite settle the -wal (it creates an empty one), so the state the stamp sees is what the check sees.
  try {
    db.pragma('schema_version');
  } catch (err) {
    if (isSqliteCorruption(err)) throw corrupt(path, (err as Error).message);
    throw err;
  }
  checkUnlessStamped(path, () => quickCheck(db, path));
}

/**
 * Create a fully migrated database at `path`, atomically: built at a temporary
 * name, then hard-linked into place (fails if `path` appeared meanwhile, so an
 * existing manifest is never clobbered).
 */
export function createFresh(path: string): void {
  const tmp = `${path}.new-${process.pid}-${Date.now()}`;
  try {
    createPrivate(tmp);
    const db = new Database(tmp);
    try {
      db.pragma('journal_mode = DELETE');
      migrate(db);
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else created it first: use theirs.
    }
  } finally {
    for (const p of [tmp, `${tmp}-wal`, `${tmp}-shm`, `${tmp}-journal`]) rmSync(p, { force: true });
  }
  if (!existsSync(path)) throw new ManifestError(`could not create the manifest at ${path}`);
}
