import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { startS3TestServer } from './index.js';
import { bytes, clientFor, errorName, errorStatus } from './test-helpers.js';

describe('s3-server faults, persistence, STS', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('injects a scripted 503 SlowDown that the SDK retries through', async () => {
    const server = await startS3TestServer({ buckets: ['bkt'] });
    const s3 = clientFor(server);
    try {
      server.addFault({ operation: 'PutObject', sequence: ['slow-down', null] });
      await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'k', Body: 'v' }));
      assert.equal(server.accounting.requests.PutObject, 2);
      server.addFault({ operation: 'HeadObject', kind: 'internal-error', times: 1 });
      const noRetry = clientFor(server, { maxAttempts: 1 });
      // HEAD errors carry no body, so only the status tells.
      assert.equal(await errorStatus(noRetry.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }))), 500);
      await noRetry.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'k' }));
      server.addFault({ operation: 'GetObject', kind: 'access-denied', times: 1 });
      assert.equal(await errorName(noRetry.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'k' }))), 'AccessDenied');
      noRetry.destroy();
    } finally {
      s3.destroy();
      await server.close();
    }
  });

  it('a connection reset mid-upload surfaces an error and stores nothing', async () => {
    const server = await startS3TestServer({ buckets: ['bkt'] });
    const s3 = clientFor(server, { maxAttempts: 1 });
    try {
      server.addFault({ operation: ['PutObject', 'UploadPart'], kind: 'reset', times: 2 });
      const body = bytes(2 * 1024 * 1024, 9);
      await assert.rejects(s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'cut', Body: body })));
      assert.equal(await errorName(s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'cut' }))), 'NotFound');
      const id = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp' }))).UploadId;
      await assert.rejects(s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'mp', UploadId: id, PartNumber: 1, Body: body })));
      const parts = await s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: 'mp', UploadId: id }));
      assert.equal(parts.Parts?.length ?? 0, 0);
      assert.ok(server.accounting.bytesIn > 0);
    } finally {
      s3.destroy();
      await server.close();
    }
  });

  it('a connection reset mid-download fails the body stream', async () => {
    const server = await startS3TestServer({ buckets: ['bkt'] });
    const s3 = clientFor(server, { maxAttempts: 1 });
    try {
      const body = bytes(1024 * 1024, 4);
      await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'dl', Body: body }));
      server.addFault({ operation: 'GetObject', sequence: ['reset'] });
      await assert.rejects(async () => {
        const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'dl' }));
        await got.Body!.transformToByteArray();
      });
      assert.ok(server.accounting.bytesOut > 0 && server.accounting.bytesOut < body.length);
      const ok = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'dl' }));
      assert.deepEqual(Buffer.from(await ok.Body!.transformToByteArray()), body);
    } finally {
      s3.destroy();
      await server.close();
    }
  });

  it('keeps objects, uploads and parts across a restart on the same directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 's3srv-'));
    dirs.push(dir);
    const body = bytes(50_000, 2);
    let uploadId: string | undefined;
    let etag: string | undefined;
    {
      const server = await startS3TestServer({ buckets: ['bkt'], persistDir: dir });
      const s3 = clientFor(server);
      await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'p/obj', Body: body, StorageClass: 'DEEP_ARCHIVE', Metadata: { a: 'b' } }));
      uploadId = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'p/mp' }))).UploadId;
      etag = (await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'p/mp', UploadId: uploadId, PartNumber: 3, Body: body }))).ETag;
      s3.destroy();
      await server.close();
    }
    const server = await startS3TestServer({ persistDir: dir, anonymous: false });
    const s3 = clientFor(server);
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'p/obj' }));
      assert.equal(head.StorageClass, 'DEEP_ARCHIVE');
      assert.deepEqual(head.Metadata, { a: 'b' });
      const parts = await s3.send(new ListPartsCommand({ Bucket: 'bkt', Key: 'p/mp', UploadId: uploadId }));
      assert.deepEqual(parts.Parts?.map((p) => [p.PartNumber, p.ETag, p.Size]), [[3, etag, body.length]]);
      const list = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', Prefix: 'p/' }));
      assert.deepEqual(list.Contents?.map((c) => c.Key), ['p/obj']);
    } finally {
      s3.destroy();
      await server.close();
    }
  });

  it('a completed multipart object is its parts end to end, without a copy: across a restart, ranges over part edges, a corrupted byte in its part', async () => {
    const dir = await mkdtemp(join(tmpdir(), 's3srv-'));
    dirs.push(dir);
    const parts = [bytes(6_000_000, 5), bytes(5_500_000, 6), bytes(1234, 7)];
    const blobs = (): string[] => readdirSync(join(dir, 'blobs')).sort();
    {
      const server = await startS3TestServer({ buckets: ['bkt'], persistDir: dir });
      const s3 = clientFor(server);
      const id = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp' }))).UploadId!;
      const etags: string[] = [];
      for (const [i, b] of parts.entries()) etags.push((await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'mp', UploadId: id, PartNumber: i + 1, Body: b }))).ETag!);
      // A fourth part left out of the complete: its blob goes, the others become the object's.
      await s3.send(new UploadPartCommand({ Bucket: 'bkt', Key: 'mp', UploadId: id, PartNumber: 4, Body: bytes(10, 8) }));
      const before = blobs();
      assert.equal(before.length, 4);
      await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'bkt', Key: 'mp', UploadId: id, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }));
      assert.equal(blobs().length, 3, 'no copy: the three chosen parts are the object');
      assert.ok(blobs().every((b) => before.includes(b)));
      s3.destroy();
      await server.close();
    }
    const server = await startS3TestServer({ persistDir: dir, anonymous: false });
    const s3 = clientFor(server);
    try {
      const whole = Buffer.concat(parts);
      const got = async (Range?: string): Promise<Buffer> => Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'mp', Range }))).Body!.transformToByteArray());
      assert.ok((await got()).equals(whole));
      assert.ok((await got('bytes=5999990-11500010')).equals(whole.subarray(5_999_990, 11_500_011)), 'a range over both part edges');
      server.corruptObject('bkt', 'mp', 6_000_005);
      const after = await got();
      assert.equal(after[6_000_005], whole[6_000_005]! ^ 0xff);
      assert.ok(after.subarray(0, 6_000_005).equals(whole.subarray(0, 6_000_005)));
      await s3.send(new DeleteObjectCommand({ Bucket: 'bkt', Key: 'mp' }));
      assert.deepEqual(blobs(), [], 'deleting the object drops every part blob');
    } finally {
      s3.destroy();
      await server.close();
    }
  });

  it('answers STS GetCallerIdentity on the same endpoint', async () => {
    const server = await startS3TestServer();
    const sts = new STSClient({ endpoint: server.endpoint, region: server.region, credentials: server.credentials });
    try {
      const id = await sts.send(new GetCallerIdentityCommand({}));
      assert.equal(id.Account, '000000000000');
      assert.match(id.Arn ?? '', /^arn:aws:iam::000000000000:/);
      assert.ok(id.UserId);
    } finally {
      sts.destroy();
      await server.close();
    }
  });
});
