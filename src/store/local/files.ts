/**
 * File-system helpers of the local store: durable writes (temp file beside
 * the target, fsync, rename, fsync of the directory), copying part files,
 * the lock file of a conditional put, and the translation of errno errors
 * into the store's typed errors.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { AccessDeniedError, NotFoundError, PermanentStoreError, StoreError, TransientStoreError } from '../errors.js';
import { RESERVED } from './layout.js';

const COPY_BUFFER = 8 * 1024 * 1024;
/** A lock file left by a writer that died is taken after this long (a conditional put takes milliseconds). */
const LOCK_STALE_MS = 30_000;

/** A fresh temp file name in `dir` (same directory as the target, so the final rename is atomic). */
export function tempPath(dir: string): string {
  return join(dir, `${RESERVED}tmp-${randomBytes(8).toString('hex')}`);
}

/** Create `path` (it must not exist: EEXIST), write `data`, fsync; on a failure after the create, remove it. */
export async function writeNew(path: string, data: Uint8Array, mode: number): Promise<void> {
  const fh = await open(path, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw err;
  }
  await fh.close();
}

/** Temp file in `dir`, fsync, rename to `path`, and (unless told not to) fsync `dir`. */
export async function writeAtomic(dir: string, path: string, data: Uint8Array, syncDir = true): Promise<void> {
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
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Append the files, in order, to `fh` (one 8 MiB buffer). */
export async function concatFiles(fh: FileHandle, files: readonly string[]): Promise<void> {
  const buf = Buffer.allocUnsafe(COPY_BUFFER);
  for (const file of files) {
    const src = await open(file, 'r');
    try {
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        let off = 0;
        while (off < bytesRead) off += (await fh.write(buf, off, bytesRead - off)).bytesWritten;
      }
    } finally {
      await src.close();
    }
  }
}

/** Create `lock` exclusively, waiting (up to ~10 s) while another writer holds it. */
export async function takeLockFile(lock: string, key: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw mapFsError(err, key);
    }
    try {
      if (Date.now() - (await stat(lock)).mtimeMs > LOCK_STALE_MS) await unlink(lock);
    } catch {
      // released meanwhile
    }
    if (i >= 200) throw new TransientStoreError(`local store: ${key} is locked by another writer (${lock})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function keyConflict(key: string): PermanentStoreError {
  return new PermanentStoreError(`key ${key} conflicts with an existing object or key prefix in the local store`, 'KEY_CONFLICT');
}

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
