/** Multipart uploads: Create, UploadPart, ListParts, Complete, Abort, ListMultipartUploads. */
import { createHash, randomBytes } from 'node:crypto';
import { receiveBody, receiveSmallBody } from './body.js';
import { ALL_ALGORITHMS, checksumOf, rawDigest, VERIFIABLE, type ChecksumAlgorithm } from './checksums.js';
import { hdr, type Reply, type RequestContext } from './context.js';
import { invalidArgument, malformedXml, noSuchUpload, S3Error } from './errors.js';
import type { BlobRef, StoredObject, StoredPart, Upload } from './model.js';
import { checksumHeaders, partNumberOf, storageClassOf, userMetadataOf } from './object-meta.js';
import { storeObject } from './object-handlers.js';
import { child, children, isoDate, parseXml, text, xmlDoc, type XmlNode } from './xml.js';

const XML = { 'content-type': 'application/xml' };

function getUpload(ctx: RequestContext): Upload {
  const id = ctx.url.searchParams.get('uploadId') ?? '';
  const u = ctx.state.bucket(ctx.bucket).uploads.get(id);
  // An upload id belongs to one key: another key with the same id is "no such upload".
  if (!u || u.key !== ctx.key) throw noSuchUpload(id);
  return u;
}

export function createMultipartUpload(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  const u: Upload = {
    uploadId: randomBytes(24).toString('base64url'),
    key: ctx.key,
    initiated: ctx.state.nowSeconds(),
    storageClass: storageClassOf(ctx.req, ctx.state.config.quirks.storageClasses),
    metadata: userMetadataOf(ctx.req),
    contentType: hdr(ctx.req, 'content-type'),
    checksumAlgorithm: hdr(ctx.req, 'x-amz-checksum-algorithm'),
    parts: new Map(),
  };
  b.uploads.set(u.uploadId, u);
  ctx.state.persist.saveUpload(b.name, u);
  const headers: Record<string, string> = { ...XML };
  if (u.checksumAlgorithm) headers['x-amz-checksum-algorithm'] = u.checksumAlgorithm;
  return {
    status: 200,
    headers,
    storageClass: u.storageClass,
    body: xmlDoc('InitiateMultipartUploadResult', [
      ['Bucket', b.name],
      ['Key', u.key],
      ['UploadId', u.uploadId],
    ]),
  };
}

export async function uploadPart(ctx: RequestContext): Promise<Reply> {
  const { state } = ctx;
  if (hdr(ctx.req, 'x-amz-copy-source')) throw new S3Error(501, 'NotImplemented', 'UploadPartCopy is not implemented by the zbk test server');
  const partNumber = partNumberOf(ctx.url.searchParams.get('partNumber'), state.config.quirks.maxParts);
  const u = getUpload(ctx);
  const got = await receiveBody(ctx.req, state.persist.newSink(), ctx.onBytesIn);
  // Aborted or completed while the body streamed: the part has nowhere to go.
  if (state.buckets.get(ctx.bucket)?.uploads.get(u.uploadId) !== u) {
    state.persist.dropBlob(got.blob);
    throw noSuchUpload(u.uploadId);
  }
  const maxPartSize = state.config.quirks.maxPartSize;
  if (got.size > maxPartSize) {
    state.persist.dropBlob(got.blob);
    throw new S3Error(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size', [
      ['ProposedSize', got.size],
      ['MaxSizeAllowed', maxPartSize],
    ]);
  }
  const p: StoredPart = {
    partNumber,
    size: got.size,
    etag: `"${got.md5.toString('hex')}"`,
    lastModified: state.nowSeconds(),
    checksums: got.checksums,
    blob: got.blob,
  };
  const old = u.parts.get(partNumber);
  u.parts.set(partNumber, p);
  state.persist.savePart(ctx.bucket, u.uploadId, p);
  if (old) state.persist.dropBlob(old.blob);
  return { status: 200, headers: { etag: p.etag, ...checksumHeaders(got.checksums) }, storageClass: u.storageClass };
}

const CHECKSUM_ELEMENTS: [ChecksumAlgorithm, string][] = ALL_ALGORITHMS.map((a) => [a, `Checksum${a}`]);

function partChecksumNodes(p: StoredPart): XmlNode[] {
  return CHECKSUM_ELEMENTS.map(([alg, el]): XmlNode => [el, p.checksums[alg]]);
}

export function listParts(ctx: RequestContext): Reply {
  const u = getUpload(ctx);
  const q = ctx.url.searchParams;
  const maxRaw = q.get('max-parts');
  const max = maxRaw === null ? 1000 : Number(maxRaw);
  if (!Number.isInteger(max) || max < 0) throw invalidArgument('Provided max-parts not an integer or within integer range', 'max-parts', maxRaw ?? '');
  const markerRaw = q.get('part-number-marker');
  const marker = markerRaw === null ? 0 : Number(markerRaw);
  if (!Number.isInteger(marker) || marker < 0) throw invalidArgument('Provided part-number-marker not an integer', 'part-number-marker', markerRaw ?? '');
  const limit = Math.min(max, 1000);
  const all = [...u.parts.values()].filter((p) => p.partNumber > marker).sort((a, b) => a.partNumber - b.partNumber);
  const page = all.slice(0, limit);
  const truncated = all.length > page.length;
  const body = xmlDoc('ListPartsResult', [
    ['Bucket', ctx.bucket],
    ['Key', u.key],
    ['UploadId', u.uploadId],
    ['PartNumberMarker', marker],
    ['NextPartNumberMarker', page.length ? page[page.length - 1].partNumber : marker],
    ['MaxParts', max],
    ['IsTruncated', truncated],
    ['StorageClass', u.storageClass],
    ['ChecksumAlgorithm', u.checksumAlgorithm],
    ...page.map((p): XmlNode => ['Part', [['PartNumber', p.partNumber], ['LastModified', isoDate(p.lastModified)], ['ETag', p.etag], ['Size', p.size], ...partChecksumNodes(p)]]),
  ]);
  return { status: 200, headers: XML, body, storageClass: u.storageClass };
}

const unquote = (s: string): string => s.trim().replace(/^"|"$/g, '');

export async function completeMultipartUpload(ctx: RequestContext): Promise<Reply> {
  const { state } = ctx;
  const b = state.bucket(ctx.bucket);
  const id = ctx.url.searchParams.get('uploadId') ?? '';
  const body = await receiveSmallBody(ctx.req, ctx.onBytesIn);
  const u = b.uploads.get(id);
  if (!u || u.key !== ctx.key) {
    // S3 answers a retried Complete of a finished upload with success.
    const done = b.objects.get(ctx.key);
    if (done?.uploadId === id && id !== '') return completeResult(ctx, done);
    throw noSuchUpload(id);
  }
  let requested: { partNumber: number; etag: string; checksums: Record<string, string> }[];
  try {
    const cmu = child(parseXml(body), 'CompleteMultipartUpload');
    if (!cmu) throw new Error('no CompleteMultipartUpload');
    requested = children(cmu, 'Part').map((p) => {
      const checksums: Record<string, string> = {};
      for (const [alg, el] of CHECKSUM_ELEMENTS) {
        const v = text(p, el);
        if (v !== undefined) checksums[alg] = v;
      }
      return { partNumber: Number(text(p, 'PartNumber')), etag: unquote(text(p, 'ETag') ?? ''), checksums };
    });
  } catch {
    throw malformedXml();
  }
  if (requested.length === 0) throw malformedXml();
  const maxParts = state.config.quirks.maxParts;
  if (requested.length > maxParts) throw invalidArgument(`Part number must be an integer between 1 and ${maxParts}, inclusive`);
  const invalidPart = (n: number, etag: string): S3Error =>
    new S3Error(400, 'InvalidPart', 'One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.', [
      ['UploadId', id],
      ['PartNumber', n],
      ['ETag', etag],
    ]);
  const parts: StoredPart[] = [];
  let prev = 0;
  for (const r of requested) {
    if (!Number.isInteger(r.partNumber) || r.partNumber <= prev) {
      throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.', [['UploadId', id]]);
    }
    prev = r.partNumber;
    const p = u.parts.get(r.partNumber);
    if (!p || unquote(p.etag) !== r.etag) throw invalidPart(r.partNumber, r.etag);
    for (const [alg, v] of Object.entries(r.checksums)) if (p.checksums[alg] !== undefined && p.checksums[alg] !== v) throw invalidPart(r.partNumber, r.etag);
    parts.push(p);
  }
  parts.forEach((p, i) => {
    if (i < parts.length - 1 && p.size < state.config.minPartSize) {
      throw new S3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.', [
        ['ProposedSize', p.size],
        ['MinSizeAllowed', state.config.minPartSize],
        ['PartNumber', p.partNumber],
        ['ETag', p.etag],
      ]);
    }
  });

  // The object is its parts' blobs end to end: nothing is copied (the parts left out are dropped below).
  const size = parts.reduce((n, p) => n + p.size, 0);
  const blob: BlobRef = { pieces: parts.map((p) => p.blob), size };
  const md5s = createHash('md5');
  for (const p of parts) md5s.update(Buffer.from(unquote(p.etag), 'hex'));
  const o: StoredObject = {
    key: u.key,
    size,
    etag: `"${md5s.digest('hex')}-${parts.length}"`,
    lastModified: state.nowSeconds(),
    storageClass: u.storageClass,
    metadata: u.metadata,
    contentType: u.contentType,
    checksums: compositeChecksums(parts),
    uploadId: u.uploadId,
    partsCount: parts.length,
    blob,
  };
  storeObject(ctx, o);
  b.uploads.delete(u.uploadId);
  state.persist.deleteUpload(b.name, u.uploadId);
  const kept = new Set(parts.map((p) => p.blob));
  for (const p of u.parts.values()) if (!kept.has(p.blob)) state.persist.dropBlob(p.blob);
  return completeResult(ctx, o);
}

/** Composite checksum (checksum of the parts' raw checksums, "-N") for algorithms every part has. */
function compositeChecksums(parts: StoredPart[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const alg of VERIFIABLE) {
    if (!parts.every((p) => p.checksums[alg] !== undefined)) continue;
    out[alg] = `${checksumOf(alg, Buffer.concat(parts.map((p) => rawDigest(p.checksums[alg]))))}-${parts.length}`;
  }
  return out;
}

function completeResult(ctx: RequestContext, o: StoredObject): Reply {
  const body = xmlDoc('CompleteMultipartUploadResult', [
    ['Location', `${ctx.url.protocol}//${hdr(ctx.req, 'host') ?? ''}/${ctx.bucket}/${encodeURIComponent(o.key)}`],
    ['Bucket', ctx.bucket],
    ['Key', o.key],
    ['ETag', o.etag],
    ...Object.entries(o.checksums).map(([alg, v]): XmlNode => [`Checksum${alg}`, v]),
  ]);
  return { status: 200, headers: XML, body, storageClass: o.storageClass };
}

export function abortMultipartUpload(ctx: RequestContext): Reply {
  const u = getUpload(ctx);
  const b = ctx.state.bucket(ctx.bucket);
  b.uploads.delete(u.uploadId);
  ctx.state.persist.deleteUpload(b.name, u.uploadId);
  for (const p of u.parts.values()) ctx.state.persist.dropBlob(p.blob);
  return { status: 204, storageClass: u.storageClass };
}

export function listMultipartUploads(ctx: RequestContext): Reply {
  const b = ctx.state.bucket(ctx.bucket);
  const q = ctx.url.searchParams;
  const prefix = q.get('prefix') ?? '';
  const keyMarker = q.get('key-marker') ?? '';
  const idMarker = q.get('upload-id-marker') ?? '';
  const maxRaw = q.get('max-uploads');
  const max = maxRaw === null ? 1000 : Number(maxRaw);
  if (!Number.isInteger(max) || max < 0) throw invalidArgument('Provided max-uploads not an integer', 'max-uploads', maxRaw ?? '');
  const limit = Math.min(max, 1000);
  const sorted = [...b.uploads.values()]
    .filter((u) => u.key.startsWith(prefix))
    .sort((x, y) => Buffer.compare(Buffer.from(x.key), Buffer.from(y.key)) || x.initiated - y.initiated || (x.uploadId < y.uploadId ? -1 : 1));
  let start = 0;
  if (keyMarker !== '') {
    const markerIdx = idMarker ? sorted.findIndex((u) => u.key === keyMarker && u.uploadId === idMarker) : -1;
    start = markerIdx !== -1 ? markerIdx + 1 : sorted.findIndex((u) => Buffer.compare(Buffer.from(u.key), Buffer.from(keyMarker)) > 0);
    if (start === -1) start = sorted.length;
  }
  const page = sorted.slice(start, start + limit);
  const truncated = start + page.length < sorted.length;
  const last = page[page.length - 1];
  const body = xmlDoc('ListMultipartUploadsResult', [
    ['Bucket', b.name],
    ['KeyMarker', keyMarker],
    ['UploadIdMarker', idMarker],
    ['NextKeyMarker', truncated && last ? last.key : undefined],
    ['NextUploadIdMarker', truncated && last ? last.uploadId : undefined],
    ['MaxUploads', max],
    ['IsTruncated', truncated],
    ['Prefix', prefix],
    ...page.map((u): XmlNode => ['Upload', [['Key', u.key], ['UploadId', u.uploadId], ['Initiated', isoDate(u.initiated)], ['StorageClass', u.storageClass]]]),
  ]);
  return { status: 200, headers: XML, body };
}
