/**
 * Completing a local upload whose parts were all placed (uploads.ts): the
 * parts already lie end to end in `placed.data`, so the object is that file,
 * cut to size and renamed to the key — each byte written once, where a copy
 * of part files writes it twice.
 *
 * Order, as for any commit (local-store.ts): data first, then the sidecar,
 * then the directory synced; a crash before the rename leaves the old object
 * and its sidecar as they were. A crash after the rename, before the
 * sidecar, leaves the new bytes under the key and no `placed.data`: the next
 * complete finds the object holding exactly the parts (their SHA-256s, one
 * read) and only writes the sidecar.
 */
import { createHash } from 'node:crypto';
import { lstat, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PermanentStoreError } from '../errors.js';
import { fsyncDir, isErrno, openPlacing, openRegular, writeAtomic } from './files.js';
import { META_SUFFIX, PLACED_DATA } from './layout.js';
import { fingerprintOf, type ObjectMeta, type Sidecar } from './sidecar.js';
import type { DiskPart } from './uploads.js';

const HASH_BUFFER = 8 * 1024 * 1024;

/** Whether `chosen` are parts 1…n, all placed, all `partSize` bytes but the last (no larger): then `placed.data` is the object. */
export function allPlaced(chosen: readonly DiskPart[], partSize: number | undefined): boolean {
  if (partSize === undefined) return false;
  return chosen.every((p, i) => p.placedAt !== undefined && p.partNumber === i + 1 && (i === chosen.length - 1 ? p.size <= partSize : p.size === partSize));
}

/**
 * Commit the placed parts of upload directory `dir` as the object at `path`.
 * @returns false when the bytes are gone (no `placed.data`, and the key does
 *   not hold them either): the caller reports NoSuchUpload.
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
  beforeRename?: () => Promise<void> | void,
): Promise<boolean> {
  const data = join(dir, PLACED_DATA);
  const present = await lstat(data).then(
    () => true,
    (err: unknown) => {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    },
  );
  let fingerprint: string | undefined;
  if (present) {
    const fh = await openPlacing(root, data);
    try {
      const st = await fh.stat();
      // Never extend: a shorter file has lost bytes its entries name.
      if (st.size < size) throw new PermanentStoreError(`the upload's placed parts hold ${st.size} bytes, not ${size}`, 'IO');
      if (st.size > size) await fh.truncate(size);
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
    if ((await fh.stat()).size !== size) return undefined;
    const buf = Buffer.allocUnsafe(HASH_BUFFER);
    let pos = 0;
    for (const p of chosen) {
      const h = createHash('sha256');
      for (let left = p.size; left > 0; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), pos);
        if (bytesRead === 0) return undefined;
        h.update(buf.subarray(0, bytesRead));
        pos += bytesRead;
        left -= bytesRead;
      }
      if (h.digest('base64') !== p.checksumSha256) return undefined;
    }
    return await fingerprintOf(fh, size);
  } finally {
    await fh.close();
  }
}
