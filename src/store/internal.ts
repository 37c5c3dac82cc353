/**
 * Rules shared by the in-process store implementations (memory, local
 * directory), so both mirror S3 the same way: key validation, checksums,
 * ETags, part-list validation on complete, restore expiry arithmetic.
 * Not part of the public contract.
 */
import { createHash } from 'node:crypto';
import { ARCHIVE_CLASSES, type ByteRange, type PutOptions, type UploadPartOptions, type UploadedPart } from './object-store.js';
import { PermanentStoreError } from './errors.js';

/** Every method of `ObjectStore`, the optional ones included (for counters and fault rules). */
export type StoreMethod =
  | 'put'
  | 'putConditional'
  | 'get'
  | 'getBytes'
  | 'head'
  | 'list'
  | 'listRestoreStates'
  | 'deleteMany'
  | 'createMultipartUpload'
  | 'uploadPart'
  | 'listParts'
  | 'completeMultipartUpload'
  | 'abortMultipartUpload'
  | 'listMultipartUploads'
  | 'requestRestore';

export const STORE_METHODS: readonly StoreMethod[] = [
  'put',
  'putConditional',
  'get',
  'getBytes',
  'head',
  'list',
  'listRestoreStates',
  'deleteMany',
  'createMultipartUpload',
  'uploadPart',
  'listParts',
  'completeMultipartUpload',
  'abortMultipartUpload',
  'listMultipartUploads',
  'requestRestore',
];

export const MAX_PARTS = 10_000;
export const DEFAULT_MIN_PART_SIZE = 5 * 1024 * 1024;
const DAY_MS = 86_400_000;

/**
 * `body` in the pieces a paced upload sends (`UploadPartOptions`): views of
 * it (no copy), each yielded once the pacer allowed its bytes; the whole
 * body at once without a pacer. Rejects with the signal's reason when it
 * is aborted.
 */
export async function* pacedChunks(body: Uint8Array, options?: UploadPartOptions): AsyncGenerator<Uint8Array> {
  const pacer = options?.pacer;
  if (!pacer) {
    yield body;
    return;
  }
  for (let off = 0; off < body.length; ) {
    const n = Math.min(Math.max(1, pacer.chunkSize), body.length - off);
    await pacer.take(n, options.signal);
    yield body.subarray(off, off + n);
    off += n;
  }
}

/** The error a paced upload stopped with (the signal's reason), or null when it was not stopped. */
export function pacingStopped(options?: UploadPartOptions): unknown {
  const s = options?.signal;
  return s?.aborted ? (s.reason ?? new Error('paced upload stopped')) : null;
}

export function zeroCounts(): Record<StoreMethod, number> {
  return Object.fromEntries(STORE_METHODS.map((m) => [m, 0])) as Record<StoreMethod, number>;
}

/**
 * Validate a store key. Rejects what could escape a directory or confuse a
 * listing: empty keys, absolute paths, `.`/`..` segments, empty segments,
 * backslashes and control characters (NUL included).
 * @throws PermanentStoreError 'INVALID_KEY'
 */
export function validateKey(key: string): void {
  const bad = (why: string): never => {
    throw new PermanentStoreError(`invalid object key (${why}): ${JSON.stringify(key.slice(0, 200))}`, 'INVALID_KEY');
  };
  if (typeof key !== 'string' || key.length === 0) bad('empty');
  if (key.length > 1024) bad('longer than 1024 characters');
  if (key.startsWith('/')) bad('absolute');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(key)) bad('control character or backslash');
  for (const seg of key.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') bad('empty, "." or ".." path segment');
  }
}

/** A listing prefix may be empty or end with `/`, but follows the key rules otherwise. */
export function validatePrefix(prefix: string): void {
  if (prefix === '') return;
  validateKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/**
 * Validate user metadata like S3: lower-case names of token characters,
 * printable ASCII values, at most 2 KB of names + values in total.
 * @throws PermanentStoreError 'INVALID_METADATA'
 */
export function validateMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!metadata) return out;
  let total = 0;
  for (const [name, value] of Object.entries(metadata)) {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(name)) throw new PermanentStoreError(`invalid metadata name: ${JSON.stringify(name)}`, 'INVALID_METADATA');
    if (typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value)) {
      throw new PermanentStoreError(`metadata value of ${name} must be printable ASCII`, 'INVALID_METADATA');
    }
    total += name.length + value.length;
    out[name] = value;
  }
  if (total > 2048) throw new PermanentStoreError(`user metadata is ${total} bytes; S3 allows at most 2 KB`, 'INVALID_METADATA');
  return out;
}

export function normalizePutOptions(options: PutOptions | undefined): { storageClass: string; metadata: Record<string, string> } {
  return { storageClass: options?.storageClass ?? 'STANDARD', metadata: validateMetadata(options?.metadata) };
}

export function isArchiveClass(storageClass: string): boolean {
  return ARCHIVE_CLASSES.has(storageClass);
}

export function sha256Base64(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

export function md5Hex(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/** S3's multipart ETag: MD5 of the concatenated binary part MD5s, then `-<part count>`. */
export function multipartEtag(partEtagsHex: readonly string[]): string {
  const h = createHash('md5');
  for (const e of partEtagsHex) h.update(Buffer.from(e, 'hex'));
  return `${h.digest('hex')}-${partEtagsHex.length}`;
}

/** @throws PermanentStoreError 'INVALID_ARGUMENT' for a part number outside 1..10,000. */
export function validatePartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
    throw new PermanentStoreError(`part number must be an integer from 1 to ${MAX_PARTS}, got ${partNumber}`, 'INVALID_ARGUMENT');
  }
}

/**
 * The checksum of a part as a server would verify it: `checksumSha256` when
 * the caller sent one and `body` matches it, else (none sent) computed here.
 * @throws PermanentStoreError 'BAD_DIGEST' when `body` does not hash to `checksumSha256`.
 */
export function verifyChecksum(body: Uint8Array, checksumSha256: string | undefined): string {
  const actual = sha256Base64(body);
  if (checksumSha256 === undefined) return actual;
  if (actual !== checksumSha256) {
    throw new PermanentStoreError('part checksum mismatch: the SHA-256 the server computed differs from the one sent', 'BAD_DIGEST');
  }
  return actual;
}

/**
 * Check a CompleteMultipartUpload part list against the stored parts, in the
 * order S3 reports problems. Returns the stored parts to assemble, in order.
 * @throws PermanentStoreError 'MALFORMED_XML' (empty list), 'INVALID_PART_ORDER',
 *   'INVALID_PART' (unknown part, ETag or checksum mismatch), 'ENTITY_TOO_SMALL'.
 */
export function checkCompleteParts<T extends UploadedPart>(requested: readonly UploadedPart[], stored: ReadonlyMap<number, T>, minPartSize: number): T[] {
  if (requested.length === 0) throw new PermanentStoreError('CompleteMultipartUpload needs at least one part', 'MALFORMED_XML');
  for (let i = 1; i < requested.length; i++) {
    if (requested[i]!.partNumber <= requested[i - 1]!.partNumber) {
      throw new PermanentStoreError('parts must be listed in strictly ascending part-number order', 'INVALID_PART_ORDER');
    }
  }
  const out: T[] = [];
  for (const r of requested) {
    const s = stored.get(r.partNumber);
    const etag = r.etag.replace(/"/g, '');
    if (!s || s.etag !== etag || (r.checksumSha256 !== undefined && s.checksumSha256 !== undefined && r.checksumSha256 !== s.checksumSha256)) {
      throw new PermanentStoreError(`part ${r.partNumber} was not uploaded or its ETag/checksum does not match`, 'INVALID_PART');
    }
    out.push(s);
  }
  for (let i = 0; i < out.length - 1; i++) {
    if (out[i]!.size < minPartSize) {
      throw new PermanentStoreError(`part ${out[i]!.partNumber} is ${out[i]!.size} bytes, below the ${minPartSize}-byte minimum for all but the last part`, 'ENTITY_TOO_SMALL');
    }
  }
  return out;
}

/**
 * Resolve an inclusive range against an object size, HTTP-style: `end` past
 * the last byte is clamped.
 * @throws PermanentStoreError 'INVALID_RANGE' when unsatisfiable.
 */
export function resolveRange(range: ByteRange | undefined, size: number): { start: number; end: number } {
  if (!range) return { start: 0, end: size - 1 };
  const { start, end } = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || start >= size) {
    throw new PermanentStoreError(`range ${start}-${end} is not satisfiable for an object of ${size} bytes`, 'INVALID_RANGE');
  }
  return { start, end: Math.min(end, size - 1) };
}

/** Restored-copy expiry as aws-facts.md states it: `from` + `days`, rounded up to the next midnight UTC. */
export function restoreExpiry(from: Date, days: number): Date {
  const t = from.getTime() + days * DAY_MS;
  return new Date(Math.ceil(t / DAY_MS) * DAY_MS);
}

/** @throws PermanentStoreError 'INVALID_ARGUMENT' for a non-positive or fractional day count. */
export function validateRestoreDays(days: number): void {
  if (!Number.isInteger(days) || days < 1) throw new PermanentStoreError(`restore days must be a positive integer, got ${days}`, 'INVALID_ARGUMENT');
}

/** S3 lists keys in UTF-8 byte order (not JavaScript's UTF-16 order). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
