/**
 * The sidecar of a local store object, `<key>.zbk-meta.json`:
 * {"v":2,"storageClass","metadata","etag","size","fingerprint"}.
 *
 * No hard links, no descriptors, no inode numbers. The sidecar's
 * `fingerprint` is the lowercase hex SHA-256 of the decimal size in ASCII,
 * "\n", the first min(4096, size) bytes and the last min(4096, size) bytes
 * of the data file. A sidecar *describes* the data file when its size equals
 * the file's and its fingerprint matches; only then do `head` (and the
 * idempotence check of a repeated complete) believe it. A missing,
 * unparseable or non-describing sidecar (a torn write, a copy made without
 * sidecars such as `aws s3 sync s3://bucket DIR`) leaves the file an object
 * all the same: `head` reports its size, STANDARD, no ETag, no metadata.
 * `list` takes the class from a sidecar whose size matches, without reading
 * the fingerprint (listing stays one stat and one small read per object).
 * A torn write is thus detected by content; one that replaces an object by
 * another of the same size with the same first and last 4 KiB is not (zbk's
 * sealed objects start with a random nonce prefix).
 *
 * Both files are opened without following links and without blocking
 * (files.ts): a data file or sidecar that is a symlink, a FIFO or another
 * special file makes `head` fail (SYMLINK / NOT_A_REGULAR_FILE) instead of
 * being read; `list`, which does not read the fingerprint, takes such a
 * sidecar as missing.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { openRegular, readOptional } from './files.js';
import { META_SUFFIX } from './layout.js';

/** Bytes from each end of the data file that go into a sidecar's fingerprint. */
const FINGERPRINT_EDGE = 4096;

export interface ObjectMeta {
  storageClass: string;
  metadata: Record<string, string>;
  etag: string;
}

export interface Sidecar extends ObjectMeta {
  v: 2;
  size: number;
  /** See the module comment. */
  fingerprint: string;
}

/** Whether `o` has the fields of ObjectMeta and a size (in a sidecar of either layout). */
export function objectMeta(o: Record<string, unknown>): boolean {
  const m = o.metadata;
  return (
    typeof o.storageClass === 'string' &&
    typeof o.etag === 'string' &&
    Number.isSafeInteger(o.size) &&
    typeof m === 'object' &&
    m !== null &&
    !Array.isArray(m) &&
    Object.values(m).every((x) => typeof x === 'string')
  );
}

export function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const o = JSON.parse(text) as unknown;
    return typeof o === 'object' && o !== null ? (o as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A layout-2 sidecar, or undefined for anything else. */
export function parseSidecar(text: string | undefined): Sidecar | undefined {
  const o = parseJson(text);
  return o && o.v === 2 && objectMeta(o) && typeof o.fingerprint === 'string' ? (o as unknown as Sidecar) : undefined;
}

/** The data file's stat and its sidecar when that describes it (fs errors are thrown; the directories are the caller's). */
export async function inspect(root: string, path: string): Promise<{ st: Stats; side: Sidecar | undefined }> {
  const fh = await openRegular(root, path);
  try {
    const st = await fh.stat();
    const side = parseSidecar(await readOptional(root, path + META_SUFFIX));
    if (!side || side.size !== st.size) return { st, side: undefined };
    return { st, side: (await fingerprintOf(fh, st.size)) === side.fingerprint ? side : undefined };
  } finally {
    await fh.close();
  }
}

/** The sidecar of the object at `path` when it describes it with this ETag and size (the object is committed). */
export async function committedSidecar(root: string, path: string, etag: string, size: number): Promise<Sidecar | undefined> {
  try {
    const { side } = await inspect(root, path);
    return side !== undefined && side.etag === etag && side.size === size ? side : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Lowercase hex SHA-256 of: the size in decimal ASCII, "\n", the first
 * min(4096, size) bytes, the last min(4096, size) bytes. Undefined if the
 * file is shorter than `size` (changing under us).
 */
export async function fingerprintOf(fh: FileHandle, size: number): Promise<string | undefined> {
  const n = Math.min(FINGERPRINT_EDGE, size);
  const h = createHash('sha256').update(`${size}\n`);
  for (const pos of [0, size - n]) {
    const buf = Buffer.alloc(n);
    let got = 0;
    while (got < n) {
      const { bytesRead } = await fh.read(buf, got, n - got, pos + got);
      if (bytesRead === 0) return undefined;
      got += bytesRead;
    }
    h.update(buf);
  }
  return h.digest('hex');
}
