/**
 * Completing a local upload whose parts were all placed (uploads.ts): the
 * parts already lie end to end in `placed.data`, so the object is that file,
 * cut to size and renamed to the key — each byte written once, where a copy
 * of part files writes it twice.
 *
 * Before the rename every part's range is hashed against its entry (one
 * read, no write): the file is written by each part in turn, so a part
 * whose bytes were overwritten (two writers of one part number, a complete
 * of fewer parts that cut the file under later entries) must not be
 * committed under its ETag. One writer per upload is assumed beyond that: a
 * writer still writing when the file is renamed writes into the object
 * (zbk's writer lease keeps a second zbk away).
 *
 * Order, as for any commit (local-store.ts): data first, then the sidecar,
 * then the directory synced; a crash before the rename leaves the old object
 * and its sidecar as they were. A crash after the rename, before the
 * sidecar, leaves the new bytes under the key and no `placed.data`: the next
 * complete finds the object holding exactly the parts (their SHA-256s, one
 * read) and only writes the sidecar.
 */
import { createHash } from 'node:crypto';
import { rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDir, isErrno, openPlacing, openRegular, writeAtomic } from './files.js';
import { META_SUFFIX, PLACED_DATA } from './layout.js';
import { fingerprintOf, type ObjectMeta, type Sidecar } from './sidecar.js';
import { removePartEntries, type DiskPart } from './uploads.js';

const HASH_BUFFER = 8 * 1024 * 1024;

/** Whether `chosen` are parts 1…n, all placed, all `partSize` bytes but the last (no larger): then `placed.data` is the object. */
export function allPlaced(chosen: readonly DiskPart[], partSize: number | undefined): boolean {
  if (partSize === undefined) return false;
  return chosen.every((p, i) => p.placedAt !== undefined && p.partNumber === i + 1 && (i === chosen.length - 1 ? p.size <= partSize : p.size === partSize));
}

/**
 * Commit the placed parts of upload directory `dir` as the object at `path`;
 * `laterEntries` are the part numbers on disk past the last chosen one.
 * @returns false when the bytes are gone or changed (`placed.data` does not
 *   hold the parts, and the key does not either): the caller reports
 *   NoSuchUpload, and the client uploads them again.
 * @throws errno errors (EXDEV when the key is on another file system: the
 *   caller copies instead; `placed.data` is untouched then)
 */
export async function commitPlaced(
  root: string,
  path: string,
  dir: string,
  chosen: readonly DiskPart[],
  size: number,
  meta: ObjectMeta,
  laterEntries: readonly number[],
  beforeRename?: () => Promise<void> | void,
): Promise<boolean> {
  const data = join(dir, PLACED_DATA);
  let fh: FileHandle | undefined;
  try {
    fh = await openPlacing(root, data, false);
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  let fingerprint: string | undefined;
  if (fh) {
    try {
      const st = await fh.stat();
      // Never extend: a shorter file has lost bytes its entries name.
      if (st.size < size) return false;
      if (!(await holdsParts(fh, chosen))) return false;
      if (st.size > size) {
        // Entries of parts past the last chosen name bytes the cut removes: they go first.
        for (const n of laterEntries) await removePartEntries(dir, n);
        await fh.truncate(size);
      }
      await fh.sync();
      fingerprint = await fingerprintOf(fh, size);
    } finally {
      await fh.close();
    }
    await beforeRename?.();
    await rename(data, path);
  } else {
    fingerprint = await fingerprintIfHolds(root, path, chosen, size);
    if (fingerprint === undefined) return false;
  }
  const side: Sidecar = { v: 2, storageClass: meta.storageClass, metadata: meta.metadata, etag: meta.etag, size, fingerprint: fingerprint! };
  await writeAtomic(dirname(path), path + META_SUFFIX, Buffer.from(JSON.stringify(side)), false);
  await fsyncDir(dirname(path));
  return true;
}

/** The object's fingerprint when the file at `path` is exactly the parts (size and each part's SHA-256), else undefined. */
async function fingerprintIfHolds(root: string, path: string, chosen: readonly DiskPart[], size: number): Promise<string | undefined> {
  let fh;
  try {
    fh = await openRegular(root, path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  try {
    if ((await fh.stat()).size !== size || !(await holdsParts(fh, chosen))) return undefined;
    return await fingerprintOf(fh, size);
  } finally {
    await fh.close();
  }
}

/** Whether `fh` holds the parts end to end from offset 0, each matching its SHA-256. */
async function holdsParts(fh: FileHandle, chosen: readonly DiskPart[]): Promise<boolean> {
  const buf = Buffer.allocUnsafe(HASH_BUFFER);
  let pos = 0;
  for (const p of chosen) {
    const h = createHash('sha256');
    for (let left = p.size; left > 0; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), pos);
      if (bytesRead === 0) return false;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
      left -= bytesRead;
    }
    if (h.digest('base64') !== p.checksumSha256) return false;
  }
  return true;
}
