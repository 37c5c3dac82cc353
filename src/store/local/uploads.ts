/**
 * The multipart uploads of the local store on disk: `.zbk-uploads/<id>/`
 * holds `upload.json` (the upload's record: key, class, metadata, initiated)
 * and one file per part named `<nnnnn>.<etag>.<sha256hex>` (PART_FILE), so
 * one rename makes a part durable with its identity and a new instance
 * lists parts from disk.
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
import { fsyncDir, isErrno, mapFsError, notRegularError, readRegular, realDirs } from './files.js';
import { PART_FILE, UPLOADS } from './layout.js';

export interface UploadRecord {
  key: string;
  storageClass: string;
  metadata: Record<string, string>;
  initiated: string;
}

export interface DiskPart extends UploadedPart {
  checksumSha256: string;
  file: string;
  mtimeMs: number;
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

/** Parts from the directory; if a replaced part left two files (crash), the newest wins. */
export async function diskParts(root: string, key: string, uploadId: string, dir: string): Promise<DiskPart[]> {
  const byNumber = new Map<number, DiskPart>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NoSuchUploadError(key, uploadId);
    throw mapFsError(err, key);
  }
  for (const file of names) {
    const m = PART_FILE.exec(file);
    if (!m) continue;
    let st: Stats;
    try {
      st = await lstat(join(dir, file));
    } catch {
      continue; // replaced concurrently
    }
    if (!st.isFile()) throw notRegularError(root, join(dir, file), st);
    const part: DiskPart = {
      partNumber: Number(m[1]),
      size: st.size,
      etag: m[2]!,
      checksumSha256: Buffer.from(m[3]!, 'hex').toString('base64'),
      file,
      mtimeMs: st.mtimeMs,
    };
    const prev = byNumber.get(part.partNumber);
    if (!prev || prev.mtimeMs < part.mtimeMs) byNumber.set(part.partNumber, part);
  }
  return [...byNumber.values()].sort((a, b) => a.partNumber - b.partNumber);
}
