import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startS3TestServer, type S3TestServer } from './index.js';
import { bytes, clientFor, errorName } from './test-helpers.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

describe('s3-server multipart', () => {
  let server: S3TestServer;
  let s3: S3Client;
  before(async () => {
    server = await startS3TestServer({ buckets: ['bkt'], minPartSize: 16 });
    s3 = clientFor(server);
  });
  after(async () => {
    s3.destroy();
    await server.close();
  });

  const create = async (key: string): Promise<string> =>
    (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: key, StorageClass: 'DEEP_ARCHIVE', Metadata: { v: '1' } }))).UploadId!;

  it('assembles >1,000 parts found through ListParts pagination', async () => {
    const key = 'big';
    const id = await create(key);
    const n = 1005;
    const parts: Buffer[] = [];
    for (let i = 1; i <= n; i++) {
      const body = bytes(16 + (i % 3), i);
      parts.push(body);
      await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: key, UploadId: id, PartNumber: i, Body: body, ChecksumSHA256: sha256(body) }));
    }
    const listed: CompletedPart[] = [];
    let marker: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: key, UploadId: id, PartNumberMarker: marker }));
      pages++;
      for (const p of page.Parts ?? []) {
        assert.equal(p.ChecksumSHA256, sha256(parts[p.PartNumber! - 1]));
        listed.push({ PartNumber: p.PartNumber, ETag: p.ETag, ChecksumSHA256: p.ChecksumSHA256 });
      }
      if (!page.IsTruncated) break;
      marker = page.NextPartNumberMarker;
    }
    assert.equal(pages, 2);
    assert.equal(listed.length, n);
    const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: key, UploadId: id, MultipartUpload: { Parts: listed } }));
    const md5s = createHash('md5');
    for (const p of parts) md5s.update(createHash('md5').update(p).digest());
    assert.equal(done.ETag, `"${md5s.digest('hex')}-${n}"`);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: key }));
    assert.equal(head.StorageClass, 'DEEP_ARCHIVE');
    assert.equal(head.ContentLength, Buffer.concat(parts).length);
    assert.deepEqual(head.Metadata, { v: '1' });
    assert.equal(await errorName(s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: key, UploadId: id }))), 'NoSuchUpload');
  });

  it('rejects small non-last parts, bad order, unknown parts and unknown uploads', async () => {
    const id = await create('errs');
    const small = bytes(8, 1);
    const ok = bytes(16, 2);
    const e1 = await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'errs', UploadId: id, PartNumber: 1, Body: small }));
    const e2 = await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'errs', UploadId: id, PartNumber: 2, Body: ok }));
    const complete = (Parts: CompletedPart[]): Promise<unknown> =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: 'errs', UploadId: id, MultipartUpload: { Parts } }));
    assert.equal(await errorName(complete([{ PartNumber: 1, ETag: e1.ETag }, { PartNumber: 2, ETag: e2.ETag }])), 'EntityTooSmall');
    assert.equal(await errorName(complete([{ PartNumber: 2, ETag: e2.ETag }, { PartNumber: 1, ETag: e1.ETag }])), 'InvalidPartOrder');
    assert.equal(await errorName(complete([{ PartNumber: 3, ETag: e2.ETag }])), 'InvalidPart');
    assert.equal(await errorName(complete([{ PartNumber: 2, ETag: e1.ETag }])), 'InvalidPart');
    // Replacing part 1 with a big enough one makes the same upload completable.
    const r1 = await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'errs', UploadId: id, PartNumber: 1, Body: ok }));
    await complete([{ PartNumber: 1, ETag: r1.ETag }, { PartNumber: 2, ETag: e2.ETag }]);
    assert.equal(await errorName(s3.send(new AbortMultipartUploadCommand({ Bucket: 'bkt', Key: 'errs', UploadId: 'nope' }))), 'NoSuchUpload');
    assert.equal(await errorName(s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'errs', UploadId: 'nope', PartNumber: 1, Body: ok }))), 'NoSuchUpload');
  });

  it('lists and aborts unfinished uploads', async () => {
    const ids = [await create('mpu/a'), await create('mpu/b'), await create('mpu/c')];
    const page1 = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'bkt', Prefix: 'mpu/', MaxUploads: 2 }));
    assert.equal(page1.IsTruncated, true);
    const page2 = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'bkt', Prefix: 'mpu/', KeyMarker: page1.NextKeyMarker, UploadIdMarker: page1.NextUploadIdMarker }));
    const all = [...(page1.Uploads ?? []), ...(page2.Uploads ?? [])].map((u) => u.UploadId);
    assert.deepEqual(all, ids);
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'bkt', Key: 'mpu/a', UploadId: ids[0] }));
    const after1 = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'bkt', Prefix: 'mpu/' }));
    assert.deepEqual(after1.Uploads?.map((u) => u.Key), ['mpu/b', 'mpu/c']);
  });

  it('rejects a part whose SHA-256 does not match and keeps the old part', async () => {
    const id = await create('sum');
    const body = bytes(20, 5);
    const first = await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'sum', UploadId: id, PartNumber: 1, Body: body, ChecksumSHA256: sha256(body) }));
    const name = await errorName(s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'sum', UploadId: id, PartNumber: 1, Body: bytes(20, 6), ChecksumSHA256: sha256(body) })));
    assert.equal(name, 'BadDigest');
    const parts = await s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: 'sum', UploadId: id }));
    assert.deepEqual(parts.Parts?.map((p) => p.ETag), [first.ETag]);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: 'sum', UploadId: id, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: first.ETag, ChecksumSHA256: sha256(body) }] } }));
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'sum' }))), 'InvalidObjectState');
  });
});

describe('CompleteMultipartUpload bodies as other clients write them', () => {
  it("an ETag whose quotes are character references (Go's encoding/xml: rclone) reads as the quoted ETag", async () => {
    const { parseXml, child, children, text } = await import('./xml.js');
    const doc = parseXml('<CompleteMultipartUpload><Part><ETag>&#34;0cc175b9c0f1b6a831c399e269772661&#34;</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>');
    const part = children(child(doc, 'CompleteMultipartUpload'), 'Part')[0];
    assert.equal(text(part, 'ETag'), '"0cc175b9c0f1b6a831c399e269772661"');
    // A key with spaces and leading zeros stays as written.
    assert.equal(text(parseXml('<K> 0012 &amp; x</K>'), 'K'), ' 0012 & x');
  });
});
