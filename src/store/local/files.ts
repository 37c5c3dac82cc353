/**
 * File-system helpers of the local store: durable writes (temp file beside
 * the target, fsync, rename, fsync of the directory), copying part files,
 * the lock file of a conditional put, the translation of errno errors into
 * the store's typed errors, and opening what is under the root without
 * following links or blocking.
 *
 * Whoever can write to the store's directory (a NAS share, a USB disk) but
 * not to the machine must not make zbk read or write outside it, nor hang
 * it. The root itself may be a symlink: the store resolves it once
 * (realpath, on first use) and names everything from the real path. Below it:
 *   - every file zbk reads is opened O_RDONLY|O_NOFOLLOW|O_NONBLOCK and must
 *     then be a regular file (fstat) — `openRegular`. A symlink is
 *     PermanentStoreError 'SYMLINK'; a FIFO, socket or device
 *     'NOT_A_REGULAR_FILE' (O_NONBLOCK: a FIFO opens at once instead of
 *     waiting for a writer; on a regular file it changes nothing); a
 *     directory is EISDIR (a key that is a "directory" of other keys is no
 *     object: NotFound).
 *   - every directory from the root down to a key (and `.zbk-uploads/<id>`,
 *     `.zbk-mp-*`) is lstat'ed segment by segment and must be a directory —
 *     `realDirs`: a symlink is 'SYMLINK', anything else ENOTDIR. A write
 *     creates missing segments one at a time (mkdir -p would follow a link).
 *   - files are created O_EXCL (never through a link) and renamed into place
 *     (a rename replaces a link, never writes through it); a write or delete
 *     refuses a key or sidecar that is a symlink or a special file
 *     (`existingEntry`) rather than replace it silently: such a file is
 *     tampering a human should see. Listings skip entries that are neither
 *     directories nor regular files (they are no objects, no uploads).
 * Messages name the path relative to the store. Node has no openat(): a
 * directory swapped for a symlink between its lstat and the open below it
 * is not seen. That is a race with a running zbk, not a planted file; the
 * final component is always opened O_NOFOLLOW, so a file outside is read
 * only through a directory swapped at that instant.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { AccessDeniedError, NotFoundError, PermanentStoreError, StoreError, TransientStoreError } from '../errors.js';
import { RESERVED } from './layout.js';

const COPY_BUFFER = 8 * 1024 * 1024;
/** A lock file left by a writer that died is taken after this long (a conditional put takes milliseconds). */
const LOCK_STALE_MS = 30_000;
/** A lock file whose mtime is further ahead than this is not a writer's (clock skew is smaller): stale. */
export const LOCK_FUTURE_MS = 60_000;
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A fresh temp file name in `dir` (same directory as the target, so the final rename is atomic). */
export function tempPath(dir: string): string {
  return join(dir, `${RESERVED}tmp-${randomBytes(8).toString('hex')}`);
}

/**
 * Create `path` (it must not exist: EEXIST), write `data` (bytes, or pieces
 * written in order as they come: a paced part), fsync, and return it open;
 * on a failure after the create, remove it.
 */
export async function createNew(path: string, data: Uint8Array | AsyncIterable<Uint8Array>, mode: number): Promise<FileHandle> {
  const fh = await open(path, 'wx', mode);
  try {
    if (data instanceof Uint8Array) await fh.writeFile(data);
    else await writeAt(fh, data, 0);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
  return fh;
}

/** createNew, closed. */
export async function writeNew(path: string, data: Uint8Array | AsyncIterable<Uint8Array>, mode: number): Promise<void> {
  await (await createNew(path, data, mode)).close();
}

/** Temp file in `dir`, fsync, rename to `path`, and (unless told not to) fsync `dir`. */
export async function writeAtomic(dir: string, path: string, data: Uint8Array | AsyncIterable<Uint8Array>, syncDir = true): Promise<void> {
  const tmp = tempPath(dir);
  await writeNew(tmp, data, 0o600);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (syncDir) await fsyncDir(dir);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** A whole file, or `size` bytes of it from `offset`. */
export type Segment = string | { file: string; offset: number; size: number };

/**
 * Append the segments under `root`, in order, to `fh` (one 8 MiB buffer);
 * each file must be a regular file (openRegular). A range that ends past
 * its file's end is ENOENT (the bytes are gone), never a short object.
 */
export async function concatFiles(fh: FileHandle, root: string, segments: readonly Segment[]): Promise<void> {
  const buf = Buffer.allocUnsafe(COPY_BUFFER);
  for (const seg of segments) {
    const file = typeof seg === 'string' ? seg : seg.file;
    let pos = typeof seg === 'string' ? 0 : seg.offset;
    let left = typeof seg === 'string' ? Infinity : seg.size;
    const src = await openRegular(root, file);
    try {
      while (left > 0) {
        const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, left), pos);
        if (bytesRead === 0) {
          if (left !== Infinity) throw errnoError('ENOENT', file);
          break;
        }
        pos += bytesRead;
        left -= bytesRead;
        let off = 0;
        while (off < bytesRead) off += (await fh.write(buf, off, bytesRead - off)).bytesWritten;
      }
    } finally {
      await src.close();
    }
  }
}

/**
 * Open (creating it) a file under `root` to write parts into at their
 * offsets: never through a symlink, never blocking, only a regular file
 * (else SYMLINK / NOT_A_REGULAR_FILE), and only one with no other name: a
 * hard link planted there would have zbk write into a file elsewhere
 * (HARD_LINK). Every other write creates its file (O_EXCL); this one is
 * opened by each part in turn. Without `create`, a missing file is ENOENT.
 */
export async function openPlacing(root: string, path: string, create = true): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDWR | (create ? constants.O_CREAT : 0) | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY, 0o600);
  } catch (err) {
    if (isErrno(err, 'ELOOP') || isErrno(err, 'EMLINK') || isErrno(err, 'EFTYPE')) {
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) throw symlinkError(root, path);
    }
    throw err;
  }
  const st = await fh.stat().catch(async (err: unknown) => {
    await fh.close();
    throw err;
  });
  if (!st.isFile()) {
    await fh.close();
    throw notRegularError(root, path, st);
  }
  if (st.nlink !== 1) {
    await fh.close();
    throw new PermanentStoreError(`local store: ${storeName(root, path)} is a hard link (${st.nlink} names); zbk writes parts only into a file of its own`, 'HARD_LINK');
  }
  return fh;
}

/** Write `data` (bytes, or pieces in order: a paced part) at `offset` of `fh`. */
export async function writeAt(fh: FileHandle, data: Uint8Array | AsyncIterable<Uint8Array>, offset: number): Promise<void> {
  const pieces: AsyncIterable<Uint8Array> | Uint8Array[] = data instanceof Uint8Array ? [data] : data;
  let at = offset;
  for await (const piece of pieces) {
    for (let done = 0; done < piece.length; ) done += (await fh.write(piece, done, piece.length - done, at + done)).bytesWritten;
    at += piece.length;
  }
}

/**
 * Create `lock` exclusively, waiting (up to ~10 s) while another writer
 * holds it. A lock is stale, and removed, when its mtime is older than
 * LOCK_STALE_MS or more than LOCK_FUTURE_MS ahead (a lock dated in 2100
 * would otherwise block every conditional put until it times out), or when
 * it is not a regular file (a symlink, a FIFO: no writer makes those); one
 * that cannot be removed (a directory) is 'NOT_A_REGULAR_FILE'.
 */
export async function takeLockFile(root: string, lock: string, key: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw mapFsError(err, key);
    }
    let st: Stats | undefined;
    try {
      st = await lstat(lock);
      const age = Date.now() - st.mtimeMs;
      if (!st.isFile() || age > LOCK_STALE_MS || age < -LOCK_FUTURE_MS) await unlink(lock);
    } catch (err) {
      // Released meanwhile, or not removable:
      if (st && !st.isFile() && !isErrno(err, 'ENOENT')) throw notRegularError(root, lock, st);
    }
    if (i >= 200) throw new TransientStoreError(`local store: ${key} is locked by another writer (${lock})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function keyConflict(key: string): PermanentStoreError {
  return new PermanentStoreError(`key ${key} conflicts with an existing object or key prefix in the local store`, 'KEY_CONFLICT');
}

// ---- Never following links, never blocking (see the module comment) ----

/** `path` relative to the store's root, with `/`, for messages. */
export function storeName(root: string, path: string): string {
  return relative(root, path).split(sep).join('/') || '.';
}

export function symlinkError(root: string, path: string): PermanentStoreError {
  return new PermanentStoreError(
    `local store: ${storeName(root, path)} is a symbolic link; zbk never follows links inside the store (remove it, or put the real file or directory there)`,
    'SYMLINK',
  );
}

/** The error for an entry that is neither a regular file nor a directory, by its (l)stat. */
export function notRegularError(root: string, path: string, st: Stats): PermanentStoreError {
  if (st.isSymbolicLink()) return symlinkError(root, path);
  const kind = st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isDirectory() ? 'a directory' : 'not a file';
  return new PermanentStoreError(`local store: ${storeName(root, path)} is not a regular file (${kind}); zbk reads and writes only regular files in the store`, 'NOT_A_REGULAR_FILE');
}

function errnoError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${path}`), { code });
}

/**
 * Open a file under `root` for reading: never through a symlink, never
 * blocking, and only a regular file (else SYMLINK / NOT_A_REGULAR_FILE; a
 * directory is EISDIR). Directories above it are the caller's (realDirs).
 */
export async function openRegular(root: string, path: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, READ_FLAGS);
  } catch (err) {
    // O_NOFOLLOW on a link: ELOOP (Linux, macOS), EMLINK (FreeBSD), EFTYPE (NetBSD).
    if (isErrno(err, 'ELOOP') || isErrno(err, 'EMLINK') || isErrno(err, 'EFTYPE')) {
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) throw symlinkError(root, path);
    }
    throw err;
  }
  try {
    const st = await fh.stat();
    if (st.isFile()) return fh;
    throw st.isDirectory() ? errnoError('EISDIR', path) : notRegularError(root, path, st);
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The whole of a regular file under `root` (openRegular). */
export async function readRegular(root: string, path: string): Promise<Buffer> {
  const fh = await openRegular(root, path);
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/** A small file that may be missing or unreadable (a sidecar, a record): its text, or undefined; a link or special file still throws. */
export async function readOptional(root: string, path: string): Promise<string | undefined> {
  try {
    return (await readRegular(root, path)).toString('utf8');
  } catch (err) {
    if (hasErrno(err)) return undefined;
    throw err;
  }
}

/**
 * Check each directory below `root` down to `dir` (lstat): a symlink is
 * SYMLINK, a missing one ENOENT (with `create`: made, one mkdir at a time),
 * anything else ENOTDIR.
 */
export async function realDirs(root: string, dir: string, create = false): Promise<void> {
  let cur = root;
  for (const seg of relative(root, dir).split(sep)) {
    if (seg === '') continue;
    cur = join(cur, seg);
    for (;;) {
      let st: Stats;
      try {
        st = await lstat(cur);
      } catch (err) {
        if (!create || !isErrno(err, 'ENOENT')) throw err;
        try {
          await mkdir(cur);
          break;
        } catch (e) {
          if (!isErrno(e, 'EEXIST')) throw e;
          continue; // made meanwhile: look at what it is
        }
      }
      if (st.isDirectory()) break;
      if (st.isSymbolicLink()) throw symlinkError(root, cur);
      throw errnoError('ENOTDIR', cur);
    }
  }
}

/**
 * What is at `path` before a write or delete replaces it: undefined when
 * nothing, its lstat for a regular file or a directory (the caller's
 * conflict); a symlink or special file is SYMLINK / NOT_A_REGULAR_FILE.
 */
export async function existingEntry(root: string, path: string): Promise<Stats | undefined> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
  if (st.isFile() || st.isDirectory()) return st;
  throw notRegularError(root, path, st);
}

// ---- Errors ----

/** An error from the file system (it carries an errno code), not one of ours or a test's. */
export function hasErrno(err: unknown): boolean {
  return typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string' && !(err instanceof StoreError);
}

export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
/** Translate a file-system error into the store's typed errors. */
export function mapFsError(err: unknown, key: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = typeof err === 'object' && err !== null ? String((err as { code?: unknown }).code ?? '') : '';
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EISDIR':
      return new NotFoundError(key);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new AccessDeniedError(`local store: permission denied for ${key} (${code})`, { cause: err });
    case 'EMFILE':
    case 'ENFILE':
    case 'EAGAIN':
    case 'EBUSY':
    case 'EINTR':
    case 'ETIMEDOUT':
      return new TransientStoreError(`local store: temporary failure for ${key} (${code})`, { cause: err });
    default:
      return new PermanentStoreError(`local store: I/O error for ${key} (${code || 'unknown'})`, 'IO', { cause: err });
  }
}
