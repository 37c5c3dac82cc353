/** Object operations: Put/Get/Head/Delete, DeleteObjects, ListObjectsV2, RestoreObject. */
import { receiveBody, receiveSmallBody } from './body.js';
import { hdr, type Reply, type RequestContext } from './context.js';
import { invalidArgument, invalidObjectState, malformedXml, noSuchKey, preconditionFailed, S3Error } from './errors.js';
import { restoreExpiry, restorePhase, type StoredObject } from './model.js';
import { checksumHeaders, objectHeaders, parseRange, storageClassOf, userMetadataOf } from './object-meta.js';
import { readBlob } from './persist.js';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { child, children, isoDate, parseXml, text, xmlDoc, type XmlNode } from './xml.js';

/** Replace (or create) an object and drop the blob it replaces. */
export function storeObject(ctx: RequestContext, o: StoredObject): void {
  const b = ctx.state.bucket(ctx.bucket);
  const old = b.objects.get(o.key);
  b.objects.set(o.key, o);
  ctx.state.persist.saveObject(b.name, o);
  if (old && old.blob !== o.blob) ctx.state.persist.dropBlob(old.blob);
}

export async function putObject(ctx: RequestContext): Promise<Reply> {
  const { req, state } = ctx;
  if (hdr(req, 'x-amz-copy-source')) throw new S3Error(501, 'NotImplemented', 'CopyObject is not implemented by the zbk test server');
  state.bucket(ctx.bucket);
  const storageClass = storageClassOf(req, state.config.quirks.storageClasses);
  const metadata = userMetadataOf(req);
  const got = await receiveBody(req, state.persist.newSink(), ctx.onBytesIn);
  // The bucket may have gone while the body streamed; S3 would answer NoSuchBucket.
  state.bucket(ctx.bucket);
  // Conditional writes (If-None-Match: *, If-Match: "etag") are decided when the object would be
  // stored, as S3 does: of two racing writers with one condition, exactly one wins.
  const current = state.bucket(ctx.bucket).objects.get(ctx.key);
  const ifNoneMatch = hdr(req, 'if-none-match');
  const ifMatch = hdr(req, 'if-match');
  const refuse = (e: S3Error): never => {
    state.persist.dropBlob(got.blob);
    throw e;
  };
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch !== '*') refuse(new S3Error(501, 'NotImplemented', 'only If-None-Match: * is supported'));
    if (current) refuse(preconditionFailed('If-None-Match'));
  }
  if (ifMatch !== undefined) {
    if (!current) refuse(noSuchKey(ctx.key));
    if (current!.etag !== ifMatch && current!.etag !== `"${ifMatch.replace(/"/g, '')}"`) refuse(preconditionFailed('If-Match'));
  }
  const o: StoredObject = {
    key: ctx.key,
    size: got.size,
    etag: `"${got.md5.toString('hex')}"`,
    lastModified: state.nowSeconds(),
    storageClass,
    metadata,
    contentType: hdr(req, 'content-type'),
    checksums: got.checksums,
    blob: got.blob,
  };
  storeObject(ctx, o);
  return { status: 200, headers: { etag: o.etag, ...checksumHeaders(got.checksums) }, storageClass };
}

function getExisting(ctx: RequestContext): StoredObject {
  const o = ctx.state.bucket(ctx.bucket).objects.get(ctx.key);
  if (!o) throw noSuchKey(ctx.key);
  return o;
}

export async function getOrHeadObject(ctx: RequestContext, head: boolean): Promise<Reply> {
  const o = getExisting(ctx);
  const now = ctx.state.clock.nowMs();
  if (!head && ctx.state.config.quirks.archiveClasses.has(o.storageClass) && restorePhase(o, now) !== 'restored') throw invalidObjectState(o.storageClass);
  const headers = objectHeaders(o, now);
  const range = parseRange(hdr(ctx.req, 'range'), o.size);
  const base = { storageClass: o.storageClass, egress: !head };
  if (range) {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${o.size}`;
    headers['content-length'] = range.end - range.start + 1;
    return { ...base, status: 206, headers, body: head ? undefined : readBlob(o.blob, range.start, range.end) };
  }
  if (hdr(ctx.req, 'x-amz-checksum-mode') === 'ENABLED') Object.assign(headers, checksumHeaders(o.checksums));
  headers['content-length'] = o.size;
  return { ...base, status: 200, headers, body: head ? undefined : readBlob(o.blob) };
}

export function deleteObject(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  const old = b.objects.get(ctx.key);
  if (old) {
    b.objects.delete(ctx.key);
    ctx.state.persist.deleteObject(b.name, ctx.key);
    ctx.state.persist.dropBlob(old.blob);
  }
  return { status: 204, storageClass: old?.storageClass };
}

export async function deleteObjects(ctx: RequestContext): Promise<Reply> {
  const b = ctx.state.bucket(ctx.bucket);
  const body = await receiveSmallBody(ctx.req, ctx.onBytesIn);
  let keys: string[];
  let quiet: boolean;
  try {
    const del = child(parseXml(body), 'Delete');
    if (!del) throw new Error('no Delete');
    quiet = text(del, 'Quiet') === 'true';
    keys = children(del, 'Object').map((o) => {
      const k = text(o, 'Key');
      if (k === undefined) throw new Error('Object without Key');
      return k;
    });
  } catch {
    throw malformedXml();
  }
  if (keys.length === 0 || keys.length > 1000) throw malformedXml();
  const results: XmlNode[] = [];
  for (const key of keys) {
    const old = b.objects.get(key);
    if (old) {
      b.objects.delete(key);
      ctx.state.persist.deleteObject(b.name, key);
      ctx.state.persist.dropBlob(old.blob);
    }
    if (!quiet) results.push(['Deleted', [['Key', key]]]);
  }
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xmlDoc('DeleteResult', results) };
}

/** S3 lists keys in UTF-8 byte order. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

export function listObjectsV2(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  const q = ctx.url.searchParams;
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeysRaw = q.get('max-keys');
  const maxKeys = maxKeysRaw === null ? 1000 : Number(maxKeysRaw);
  if (!Number.isInteger(maxKeys) || maxKeys < 0) throw invalidArgument('Provided max-keys not an integer or within integer range', 'max-keys', maxKeysRaw ?? '');
  const limit = Math.min(maxKeys, 1000);
  const token = q.get('continuation-token');
  const startAfter = q.get('start-after') ?? '';
  let marker = startAfter;
  if (token !== null) {
    try {
      marker = Buffer.from(token, 'base64url').toString('utf8');
      if (!marker.startsWith('k:')) throw new Error();
      marker = marker.slice(2);
    } catch {
      throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
    }
  }
  const url = q.get('encoding-type') === 'url';
  const enc = (s: string): string => (url ? encodeURIComponent(s).replace(/%2F/g, '/') : s);
  // OptionalObjectAttributes=RestoreStatus: as AWS, a RestoreStatus only for an object with a restore running or a copy.
  const asked = (hdr(ctx.req, 'x-amz-optional-object-attributes') ?? '').split(',').some((s) => s.trim() === 'RestoreStatus');
  const withRestore = asked && ctx.state.config.restoreStatusInLists;
  const now = ctx.state.clock.nowMs();
  const keys = [...b.objects.keys()].filter((k) => k.startsWith(prefix) && (marker === '' || byteOrder(k, marker) > 0)).sort(byteOrder);

  const contents: XmlNode[] = [];
  const prefixes: XmlNode[] = [];
  let count = 0;
  let last = '';
  let truncated = false;
  let lastPrefix: string | undefined;
  for (const k of keys) {
    // Keys inside a common prefix already returned on an earlier page stay rolled up.
    if (delimiter && marker.endsWith(delimiter) && k.startsWith(marker) && marker.length > prefix.length) continue;
    if (delimiter) {
      const i = k.indexOf(delimiter, prefix.length);
      if (i !== -1) {
        const cp = k.slice(0, i + delimiter.length);
        if (cp === lastPrefix) continue;
        if (count === limit) {
          truncated = true;
          break;
        }
        lastPrefix = cp;
        prefixes.push(['CommonPrefixes', [['Prefix', enc(cp)]]]);
        count++;
        last = cp;
        continue;
      }
    }
    if (count === limit) {
      truncated = true;
      break;
    }
    const o = b.objects.get(k) as StoredObject;
    const entry: XmlNode[] = [
      ['Key', enc(k)],
      ['LastModified', isoDate(o.lastModified)],
      ['ETag', o.etag],
      ['Size', o.size],
      ['StorageClass', o.storageClass],
    ];
    const phase = restorePhase(o, now);
    if (withRestore && phase !== 'none') {
      entry.push(['RestoreStatus', [['IsRestoreInProgress', phase === 'ongoing'], ['RestoreExpiryDate', phase === 'restored' ? isoDate(o.restore?.expiresAt ?? 0) : undefined]]]);
    }
    contents.push(['Contents', entry]);
    count++;
    last = k;
  }
  if (asked) ctx.state.counters.restoreStatusList(contents.length);
  const doc = xmlDoc('ListBucketResult', [
    ['Name', b.name],
    ['Prefix', enc(prefix)],
    ['Delimiter', delimiter ? enc(delimiter) : undefined],
    ['MaxKeys', maxKeys],
    ['KeyCount', count],
    ['IsTruncated', truncated],
    ['EncodingType', url ? 'url' : undefined],
    ['ContinuationToken', token ?? undefined],
    ['NextContinuationToken', truncated ? Buffer.from(`k:${last}`).toString('base64url') : undefined],
    ['StartAfter', q.has('start-after') ? enc(startAfter) : undefined],
    ...contents,
    ...prefixes,
  ]);
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: doc };
}

const TIERS = new Set(['Standard', 'Bulk', 'Expedited']);
const TIER_SPEED: Record<string, number> = { Bulk: 0, Standard: 1, Expedited: 2 };

export async function restoreObject(ctx: RequestContext): Promise<Reply> {
  const { state } = ctx;
  const b = state.bucket(ctx.bucket);
  const { quirks } = state.config;
  const body = await receiveSmallBody(ctx.req, ctx.onBytesIn);
  // No restore step (GCS XML API): the operation does not exist there.
  if (quirks.restore === 'none' && quirks.restoreAnswer !== 'invalid-object-state') {
    throw new S3Error(501, 'NotImplemented', 'A header or query you provided requested a function that is not implemented.');
  }
  let days: number;
  let tier: string | undefined;
  try {
    const rr = child(parseXml(body), 'RestoreRequest');
    if (!rr) throw new Error('no RestoreRequest');
    days = Number(text(rr, 'Days'));
    tier = text(child(rr, 'GlacierJobParameters'), 'Tier') ?? text(rr, 'Tier');
  } catch {
    throw malformedXml();
  }
  if (!Number.isInteger(days) || days < 1) throw malformedXml();
  // Days only (OVH Cold Archive): a Tier element is refused, not ignored, so a client sending one is caught.
  if (tier !== undefined && quirks.restore === 'days-only') throw invalidArgument('Tier is not supported by this storage class; send Days only', 'Tier', tier);
  tier ??= 'Standard';
  if (!TIERS.has(tier)) throw malformedXml();
  const o = getExisting(ctx);
  if (!quirks.archiveClasses.has(o.storageClass)) {
    throw new S3Error(403, 'InvalidObjectState', "Restore is not allowed for the object's current storage class", [['StorageClass', o.storageClass]]);
  }
  if (tier === 'Expedited' && o.storageClass === 'DEEP_ARCHIVE') {
    throw new S3Error(400, 'InvalidArgument', 'Expedited retrievals are currently not available for the DEEP_ARCHIVE storage class');
  }
  const now = state.clock.nowMs();
  const phase = restorePhase(o, now);
  const r = o.restore;
  let status: number;
  if (phase === 'ongoing' && r) {
    // Only a faster tier is accepted while running (a tier upgrade); the outcome stays "running".
    if (TIER_SPEED[tier] <= TIER_SPEED[r.tier]) {
      throw new S3Error(409, 'RestoreAlreadyInProgress', 'Object restore is already in progress');
    }
    o.restore = { ...r, tier, days, expiresAt: restoreExpiry(r.requestedAt, days) };
    status = 202;
  } else if (phase === 'restored' && r) {
    o.restore = { ...r, days, expiresAt: restoreExpiry(now, days) };
    status = 200;
  } else {
    o.restore = { requestedAt: now, completesAt: now + state.config.restoreDelayMs, expiresAt: restoreExpiry(now, days), days, tier };
    status = 202;
  }
  state.persist.saveObject(b.name, o);
  state.counters.restore(tier);
  return { status, storageClass: o.storageClass };
}

/** Test backdoor: flip one byte of a stored object in place (simulates bit rot the ETag no longer matches). */
export function corrupt(o: StoredObject, offset: number): void {
  if (!Number.isInteger(offset) || offset < 0 || offset >= o.size) throw new RangeError(`offset ${offset} outside object of ${o.size} bytes`);
  // The leaf blob that holds the byte (a multipart object is its parts' blobs).
  let blob = o.blob;
  let at = offset;
  while (blob.pieces) {
    let i = 0;
    while (i < blob.pieces.length && at >= blob.pieces[i]!.size) at -= blob.pieces[i++]!.size;
    if (i === blob.pieces.length) throw new RangeError(`offset ${offset} outside the pieces of ${o.key}`);
    blob = blob.pieces[i]!;
  }
  if (blob.mem) {
    blob.mem[at] ^= 0xff;
    return;
  }
  const fd = openSync(blob.file as string, 'r+');
  try {
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, at);
    one[0] ^= 0xff;
    writeSync(fd, one, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}
