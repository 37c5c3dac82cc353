/**
 * The multipart uploads of the local store on disk: `.zbk-uploads/<id>/`
 * holds `upload.json` (the upload's record: key, class, metadata, initiated)
 * and one file per part named `<nnnnn>.<etag>.<sha256hex>` (PART_FILE), so
 * one rename makes a part durable with its identity and a new instance
 * lists parts from disk.
 */
import type { Stats } from 'node:fs';
import { readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NoSuchUploadError } from '../errors.js';
import type { UploadedPart } from '../object-store.js';
import { fsyncDir, isErrno, mapFsError } from './files.js';
import { PART_FILE } from './layout.js';

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

export async function uploadRecord(key: string, uploadId: string, dir: string): Promise<UploadRecord> {
  let rec: UploadRecord;
  try {
    rec = JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as UploadRecord;
  } catch (err) {
    if (isErrno(err, 'ENOENT') || err instanceof SyntaxError) throw new NoSuchUploadError(key, uploadId);
    throw mapFsError(err, key);
  }
  if (rec.key !== key) throw new NoSuchUploadError(key, uploadId);
  return rec;
}

/** Parts from the directory; if a replaced part left two files (crash), the newest wins. */
export async function diskParts(key: string, uploadId: string, dir: string): Promise<DiskPart[]> {
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
      st = await stat(join(dir, file));
    } catch {
      continue; // replaced concurrently
    }
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
