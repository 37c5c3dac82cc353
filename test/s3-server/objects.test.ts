import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startS3TestServer, type S3TestServer } from './index.js';
import { bytes, clientFor, errorName, errorStatus } from './test-helpers.js';

describe('s3-server objects', () => {
  let server: S3TestServer;
  let s3: S3Client;
  before(async () => {
    server = await startS3TestServer({ buckets: ['bkt'] });
    s3 = clientFor(server);
  });
  after(async () => {
    s3.destroy();
    await server.close();
  });

  it('puts, gets, heads and deletes with metadata and md5 ETag', async () => {
    const body = bytes(10_000, 7);
    const put = await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'dir/a', Body: body, Metadata: { Color: 'blue' }, StorageClass: 'STANDARD_IA' }));
    assert.equal(put.ETag, `"${createHash('md5').update(body).digest('hex')}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'dir/a' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'dir/a' }));
    assert.equal(head.ContentLength, 10_000);
    assert.equal(head.StorageClass, 'STANDARD_IA');
    assert.deepEqual(head.Metadata, { color: 'blue' });
    await s3.send(new DeleteObjectCommand({ Bucket: 'bkt', Key: 'dir/a' }));
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'dir/a' }))), 'NoSuchKey');
    assert.equal(await errorName(s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'dir/a' }))), 'NotFound');
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'nope', Key: 'x' }))), 'NoSuchBucket');
  });

  it('serves ranges with 206 and Content-Range', async () => {
    const body = bytes(1000, 3);
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'r', Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'r', Range: 'bytes=100-199' }));
    assert.equal(got.$metadata.httpStatusCode, 206);
    assert.equal(got.ContentRange, 'bytes 100-199/1000');
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body.subarray(100, 200));
    const tail = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'r', Range: 'bytes=-10' }));
    assert.deepEqual(Buffer.from(await tail.Body!.transformToByteArray()), body.subarray(990));
    assert.equal(await errorStatus(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'r', Range: 'bytes=1000-' }))), 416);
  });

  it('rejects user metadata over 2 KB', async () => {
    const name = await errorName(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'm', Body: 'x', Metadata: { big: 'v'.repeat(2100) } })));
    assert.equal(name, 'MetadataTooLarge');
  });

  it('lists with prefix, delimiter and continuation tokens', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `list/k${String(i).padStart(3, '0')}`);
    for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: k, Body: k, StorageClass: 'DEEP_ARCHIVE' }));
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'list/sub/x', Body: 'x' }));
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'list/k', MaxKeys: 10, ContinuationToken: token }));
      pages++;
      for (const c of page.Contents ?? []) {
        seen.push(c.Key!);
        assert.equal(c.StorageClass, 'DEEP_ARCHIVE');
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    assert.equal(pages, 3);
    assert.deepEqual(seen, keys);
    const d = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'list/', Delimiter: '/' }));
    assert.deepEqual(d.CommonPrefixes?.map((p) => p.Prefix), ['list/sub/']);
    assert.equal(d.Contents?.length, 25);
  });

  it('deletes many, quietly, including missing keys', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'del/1', Body: '1' }));
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'del/2', Body: '2' }));
    const res = await s3.send(new DeleteObjectsCommand({ Bucket: 'bkt', Delete: { Quiet: true, Objects: [{ Key: 'del/1' }, { Key: 'del/2' }, { Key: 'del/none' }] } }));
    assert.equal(res.Deleted, undefined);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'del/' }));
    assert.equal(left.KeyCount, 0);
  });

  it('accepts the SDK default aws-chunked streaming upload with a CRC32 trailer', async () => {
    const body = bytes(300_000, 11);
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'chunked', Body: Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]), ContentLength: body.length }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'chunked' }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    assert.ok((server.accounting.requests.PutObject ?? 0) > 0);
  });

  it('rejects a wrong checksum and stores nothing', async () => {
    const bad = await errorName(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'bad', Body: 'hello', ChecksumSHA256: Buffer.alloc(32).toString('base64') })));
    assert.equal(bad, 'BadDigest');
    const badCrc = await errorName(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'bad', Body: 'hello', ChecksumCRC32C: 'AAAAAA==' })));
    assert.equal(badCrc, 'BadDigest');
    assert.equal(await errorName(s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'bad' }))), 'NotFound');
    // Correct CRC32C of "hello" is accepted, proving the implementation agrees with the SDK's.
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'good', Body: 'hello', ChecksumAlgorithm: 'CRC32C' }));
  });

  it('rejects unsigned requests', async () => {
    const res = await fetch(`${server.endpoint}/bkt/good`);
    assert.equal(res.status, 403);
    assert.match(await res.text(), /<Code>AccessDenied<\/Code>/);
  });
});
