/**
 * The multipart uploads of the local store on disk: `.zbk-uploads/<id>/`
 * holds `upload.json` (the upload's record: key, class, metadata, initiated,
 * and the caller's part size when it gave one) and its parts, each in one of
 * two forms whose name is its identity, so a new instance lists parts from
 * disk:
 *   - placed (the upload has a part size and the part is no larger): its
 *     bytes at (n − 1) × part size of `placed.data`, synced, then an empty
 *     `<nnnnn>.<etag>.<sha256hex>.<size>.placed` (PLACED_PART). An upload of
 *     equal parts completes by renaming `placed.data` to the key: each byte
 *     is written once.
 *   - a part file `<nnnnn>.<etag>.<sha256hex>` (PART_FILE) made by one
 *     rename: any other part; completing copies it.
 * Replacing a placed part removes every entry of its number (durably) before
 * its bytes are overwritten, so no entry ever names bytes that changed.
 *
 * Nothing here follows a link (files.ts): `.zbk-uploads` and the upload's
 * directory must be real directories, the record and every part file
 * regular files; a symlink or special file there is SYMLINK /
 * NOT_A_REGULAR_FILE for the upload's operations (a part file linked to a
 * file outside would otherwise be copied into the completed object).
 * `listMultipartUploads` skips an id that is no real directory.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NoSuchUploadError } from '../errors.js';
import type { UploadedPart } from '../object-store.js';
import { fsyncDir, isErrno, mapFsError, notRegularError, openPlacing, readRegular, realDirs, writeAt, writeNew } from './files.js';
import { PART_FILE, PLACED_DATA, PLACED_PART, UPLOADS } from './layout.js';

export interface UploadRecord {
  key: string;
  storageClass: string;
  metadata: Record<string, string>;
  initiated: string;
  /** Stored bytes of every part but the last (MultipartOptions.partSize), when the caller gave it. */
  partSize?: number;
}

export interface DiskPart extends UploadedPart {
  checksumSha256: string;
  /** The part file, or the placed part's empty entry. */
  file: string;
  /** A placed part: where its bytes start in PLACED_DATA. */
  placedAt?: number;
  mtimeMs: number;
}

/** A usable part size from a record (a positive safe integer), else undefined. */
export function placingSize(rec: UploadRecord): number | undefined {
  return Number.isSafeInteger(rec.partSize) && rec.partSize! > 0 ? rec.partSize : undefined;
}

/** The entry name of a placed part. */
export function placedName(partNumber: number, etag: string, checksumHex: string, size: number): string {
  return `${String(partNumber).padStart(5, '0')}.${etag}.${checksumHex}.${size}.placed`;
}

/**
 * Remove every entry (part file or placed entry) of part `partNumber` but
 * `keep`, and sync the directory when one went: before a placed part's bytes
 * are overwritten, nothing may still name the old ones.
 */
export async function removePartEntries(dir: string, partNumber: number, keep?: string): Promise<void> {
  const num = `${String(partNumber).padStart(5, '0')}.`;
  let removed = false;
  for (const f of await readdir(dir)) {
    if (f.startsWith(num) && f !== keep && (PART_FILE.test(f) || PLACED_PART.test(f))) {
      // An entry that cannot go (EBUSY on a share) would name bytes about to change: fail instead.
      await unlink(join(dir, f)).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
      removed = true;
    }
  }
  if (removed) await fsyncDir(dir);
}

/**
 * Place a part: its bytes at (n − 1) × `partSize` of PLACED_DATA, synced,
 * then its entry (empty, made exclusively) and the directory synced.
 */
export async function placePart(root: string, dir: string, partNumber: number, partSize: number, data: Uint8Array | AsyncIterable<Uint8Array>, entry: string): Promise<void> {
  await removePartEntries(dir, partNumber);
  const fh = await openPlacing(root, join(dir, PLACED_DATA));
  try {
    await writeAt(fh, data, (partNumber - 1) * partSize);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await writeNew(join(dir, entry), new Uint8Array(0), 0o600);
  await fsyncDir(dir);
}

/** The directory of upload `uploadId` (not checked). */
export function uploadPath(root: string, uploadId: string): string {
  return join(root, UPLOADS, uploadId);
}

/**
 * Remove an upload's directory, its record first (durably): a crash midway
 * leaves no upload (NoSuchUpload), only part files, never an upload that
 * lost some of its parts.
 */
export async function removeUpload(key: string, dir: string): Promise<void> {
  try {
    await unlink(join(dir, 'upload.json'));
    await fsyncDir(dir);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw mapFsError(err, key);
  }
  try {
    await rm(dir, { recursive: true, force: true });
  } catch (err) {
    throw mapFsError(err, key);
  }
}

/**
 * The record in upload directory `dir`, or undefined when there is none;
 * the directories are checked (realDirs). @throws SyntaxError for a torn
 * record, SYMLINK / NOT_A_REGULAR_FILE, errno errors
 */
export async function readUploadRecord(root: string, dir: string): Promise<UploadRecord | undefined> {
  try {
    await realDirs(root, dir);
    return JSON.parse((await readRegular(root, join(dir, 'upload.json'))).toString('utf8')) as UploadRecord;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

/** The record of upload `uploadId` of `key`. @throws NoSuchUploadError */
export async function uploadRecord(root: string, key: string, uploadId: string, dir: string): Promise<UploadRecord> {
  let rec: UploadRecord | undefined;
  try {
    rec = await readUploadRecord(root, dir);
  } catch (err) {
    if (err instanceof SyntaxError) throw new NoSuchUploadError(key, uploadId);
    throw mapFsError(err, key);
  }
  if (rec?.key !== key) throw new NoSuchUploadError(key, uploadId);
  return rec;
}

/**
 * Parts from the directory; if a replaced part left two entries (crash), the
 * newest wins. Placed entries count only with the record's part size.
 */
export async function diskParts(root: string, key: string, uploadId: string, dir: string, partSize?: number): Promise<DiskPart[]> {
  const byNumber = new Map<number, DiskPart>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
    throw mapFsError(err, key);
  }
  for (const file of names) {
    const placed = partSize !== undefined ? PLACED_PART.exec(file) : null;
    const m = placed ?? PART_FILE.exec(file);
    if (!m) continue;
    let st: Stats;
    try {
      st = await lstat(join(dir, file));
    } catch {
      continue; // replaced concurrently
    }
    if (!st.isFile()) throw notRegularError(root, join(dir, file), st);
    const partNumber = Number(m[1]);
    const part: DiskPart = {
      partNumber,
      size: placed ? Number(placed[4]) : st.size,
      etag: m[2]!,
      checksumSha256: Buffer.from(m[3]!, 'hex').toString('base64'),
      file,
      ...(placed ? { placedAt: (partNumber - 1) * partSize! } : {}),
      mtimeMs: st.mtimeMs,
    };
    const prev = byNumber.get(part.partNumber);
    if (!prev || prev.mtimeMs < part.mtimeMs) byNumber.set(part.partNumber, part);
  }
  return [...byNumber.values()].sort((a, b) => a.partNumber - b.partNumber);
}
