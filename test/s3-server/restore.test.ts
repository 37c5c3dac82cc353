import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  GetBucketLifecycleConfigurationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  RestoreObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { startS3TestServer, TestClock, type S3TestServer } from './index.js';
import { clientFor, errorName } from './test-helpers.js';

const HOUR = 3_600_000;

describe('s3-server Deep Archive restore', () => {
  let server: S3TestServer;
  let s3: S3Client;
  const clock = new TestClock(new Date('2030-03-10T10:30:00Z'));
  before(async () => {
    server = await startS3TestServer({ buckets: ['bkt'], clock, restoreDelayMs: 12 * HOUR });
    s3 = clientFor(server);
  });
  after(async () => {
    s3.destroy();
    await server.close();
  });

  it('goes archived → in progress → restored until midnight after Days → archived', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'vol', Body: 'payload', StorageClass: 'DEEP_ARCHIVE' }));
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'vol' }))), 'InvalidObjectState');
    const head0 = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'vol' }));
    assert.equal(head0.Restore, undefined);

    const req = { Bucket: 'bkt', Key: 'vol', RestoreRequest: { Days: 2, GlacierJobParameters: { Tier: 'Bulk' as const } } };
    const started = await s3.send(new RestoreObjectCommand(req));
    assert.equal(started.$metadata.httpStatusCode, 202);
    assert.equal(await errorName(s3.send(new RestoreObjectCommand(req))), 'RestoreAlreadyInProgress');
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'vol' }))).Restore, 'ongoing-request="true"');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'bkt', OptionalObjectAttributes: ['RestoreStatus'] }));
    assert.equal(listed.Contents?.[0].RestoreStatus?.IsRestoreInProgress, true);
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'vol' }))), 'InvalidObjectState');

    clock.advance(12 * HOUR);
    // Requested 2030-03-10 10:30 + 2 days → rounded up to midnight 2030-03-13.
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'vol' }));
    assert.equal(head.Restore, 'ongoing-request="false", expiry-date="Wed, 13 Mar 2030 00:00:00 GMT"');
    assert.equal(head.StorageClass, 'DEEP_ARCHIVE');
    const got = await s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'vol' }));
    assert.equal(await got.Body!.transformToString(), 'payload');
    assert.equal(server.accounting.bytesOutByMonth['2030-03'], 7);
    assert.equal(server.accounting.restoreRequestsByTier.Bulk, 1);

    clock.set(new Date('2030-03-13T00:00:00Z'));
    assert.equal(await errorName(s3.send(new GetObjectCommand({ Bucket: 'bkt', Key: 'vol' }))), 'InvalidObjectState');
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'vol' }))).Restore, undefined);
  });

  it('answers 200 and moves the expiry when already restored', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'again', Body: 'x', StorageClass: 'GLACIER' }));
    const req = { Bucket: 'bkt', Key: 'again', RestoreRequest: { Days: 1, GlacierJobParameters: { Tier: 'Standard' as const } } };
    assert.equal((await s3.send(new RestoreObjectCommand(req))).$metadata.httpStatusCode, 202);
    clock.advance(13 * HOUR);
    const before = clock.now();
    const again = await s3.send(new RestoreObjectCommand({ ...req, RestoreRequest: { ...req.RestoreRequest, Days: 5 } }));
    assert.equal(again.$metadata.httpStatusCode, 200);
    const expected = new Date(Date.UTC(before.getUTCFullYear(), before.getUTCMonth(), before.getUTCDate() + 6));
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: 'bkt', Key: 'again' }))).Restore, `ongoing-request="false", expiry-date="${expected.toUTCString()}"`);
  });

  it('refuses to restore a STANDARD object with InvalidObjectState', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'bkt', Key: 'hot', Body: 'x' }));
    const name = await errorName(s3.send(new RestoreObjectCommand({ Bucket: 'bkt', Key: 'hot', RestoreRequest: { Days: 1, GlacierJobParameters: { Tier: 'Bulk' } } })));
    assert.equal(name, 'InvalidObjectState');
  });

  it('stores and returns lifecycle rules', async () => {
    assert.equal(await errorName(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'bkt' }))), 'NoSuchLifecycleConfiguration');
    await s3.send(
      new PutBucketLifecycleConfigurationCommand({
        Bucket: 'bkt',
        LifecycleConfiguration: { Rules: [{ ID: 'abort-mpu', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } }] },
      }),
    );
    const lc = await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: 'bkt' }));
    assert.equal(lc.Rules?.[0].ID, 'abort-mpu');
    assert.equal(lc.Rules?.[0].AbortIncompleteMultipartUpload?.DaysAfterInitiation, 7);
  });
});
