/** Helpers shared by object and multipart handlers: metadata, storage class, response headers. */
import type { IncomingMessage } from 'node:http';
import { headerName, type ChecksumAlgorithm } from './checksums.js';
import { hdr } from './context.js';
import { invalidArgument, S3Error } from './errors.js';
import { restorePhase, type StoredObject } from './model.js';

/** `x-amz-storage-class`, default STANDARD; one the emulated provider does not have is InvalidStorageClass. */
export function storageClassOf(req: IncomingMessage, classes: ReadonlySet<string>): string {
  const c = hdr(req, 'x-amz-storage-class') ?? 'STANDARD';
  if (!classes.has(c)) throw new S3Error(400, 'InvalidStorageClass', 'The storage class you specified is not valid', [['StorageClassRequested', c]]);
  return c;
}

/** User metadata at most 2 KB: sum of UTF-8 bytes of names (without prefix) and values. */
export const METADATA_LIMIT = 2048;

/** `x-amz-meta-*` headers as a record of lower-case names without the prefix. */
export function userMetadataOf(req: IncomingMessage): Record<string, string> {
  const meta: Record<string, string> = {};
  let size = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const n = name.slice('x-amz-meta-'.length);
    const v = Array.isArray(value) ? value.join(',') : value;
    meta[n] = v;
    size += Buffer.byteLength(n) + Buffer.byteLength(v);
  }
  if (size > METADATA_LIMIT) {
    throw new S3Error(400, 'MetadataTooLarge', 'Your metadata headers exceed the maximum allowed metadata size.', [
      ['Size', size],
      ['MaxSizeAllowed', METADATA_LIMIT],
    ]);
  }
  return meta;
}

/** RFC 1123 date as HTTP headers carry it. */
export const httpDate = (ms: number): string => new Date(ms).toUTCString();

/** The `x-amz-restore` header value, or undefined when there is none. */
export function restoreHeader(o: StoredObject, now: number): string | undefined {
  const phase = restorePhase(o, now);
  if (phase === 'ongoing') return 'ongoing-request="true"';
  if (phase === 'restored' && o.restore) return `ongoing-request="false", expiry-date="${httpDate(o.restore.expiresAt)}"`;
  return undefined;
}

/** Headers common to GET and HEAD of an object. */
export function objectHeaders(o: StoredObject, now: number): Record<string, string | number> {
  const h: Record<string, string | number> = {
    etag: o.etag,
    'last-modified': httpDate(o.lastModified),
    'accept-ranges': 'bytes',
    'content-type': o.contentType ?? 'binary/octet-stream',
  };
  if (o.storageClass !== 'STANDARD') h['x-amz-storage-class'] = o.storageClass;
  for (const [k, v] of Object.entries(o.metadata)) h[`x-amz-meta-${k}`] = v;
  const r = restoreHeader(o, now);
  if (r) h['x-amz-restore'] = r;
  if (o.partsCount !== undefined) h['x-amz-mp-parts-count'] = o.partsCount;
  return h;
}

/** Echo checksums in response headers (and say whether they are composite). */
export function checksumHeaders(checksums: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = {};
  for (const [alg, v] of Object.entries(checksums)) {
    h[headerName(alg as ChecksumAlgorithm)] = v;
    h['x-amz-checksum-type'] = v.includes('-') ? 'COMPOSITE' : 'FULL_OBJECT';
  }
  return h;
}

/** Parse a `Range: bytes=…` header against `size`. Undefined = whole object (also for syntax S3 ignores). */
export function parseRange(value: string | undefined, size: number): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable(size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return undefined;
  }
  if (start >= size) throw unsatisfiable(size);
  return { start, end };
}

const unsatisfiable = (size: number): S3Error =>
  new S3Error(416, 'InvalidRange', 'The requested range is not satisfiable', [
    ['RangeRequested', 'bytes'],
    ['ActualObjectSize', size],
  ]);

/** Validate a part number (1..10,000). */
export function partNumberOf(v: string | null, maxParts: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > maxParts) throw invalidArgument(`Part number must be an integer between 1 and ${maxParts}, inclusive`, 'partNumber', v ?? '');
  return n;
}
