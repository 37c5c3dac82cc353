/**
 * A missing bucket: HEAD answers with a body-less 404 (indistinguishable from
 * a missing object), a listing names NoSuchBucket, mapped to its own code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { NotFoundError, StoreError } from '../../src/store/errors.js';
import { S3Store, toStoreError } from '../../src/store/s3-store.js';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';

describe('S3Store: a bucket that does not exist', () => {
  let server: S3TestServer;
  before(async () => {
    server = await startS3TestServer({ clock: new TestClock(new Date('2030-03-10T08:00:00Z')), buckets: ['zbk-test'] });
  });
  after(() => server.close());

  it('maps NoSuchBucket to NO_SUCH_BUCKET (store exit code), not to NotFound', () => {
    const e = toStoreError({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }, 'ListObjectsV2', '');
    assert.ok(e instanceof StoreError && !(e instanceof NotFoundError));
    assert.equal(e.code, 'NO_SUCH_BUCKET');
    assert.equal(e.exitCode, ExitCode.STORE);
    assert.equal(ExitCode.STORE, 5);
  });

  it('HEAD says only NotFound; a listing says NO_SUCH_BUCKET', async () => {
    const store = new S3Store(
      { url: 's3://no-such-bucket/pfx', endpoint: server.endpoint, region: server.region, pathStyle: true, dataStorageClass: 'DEEP_ARCHIVE', metaStorageClass: 'STANDARD', checksumCalculation: 'when_supported' },
      { credentials: server.credentials },
    );
    await assert.rejects(store.head('zbk.key'), (e: unknown) => e instanceof NotFoundError);
    await assert.rejects(
      (async () => {
        for await (const e of store.list('')) void e;
      })(),
      (e: unknown) => e instanceof StoreError && e.code === 'NO_SUCH_BUCKET' && e.exitCode === ExitCode.STORE,
    );
  });
});
