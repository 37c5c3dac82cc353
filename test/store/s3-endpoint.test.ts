/**
 * The contract suite against any S3 endpoint (LocalStack, MinIO, AWS).
 * Set ZBK_TEST_S3_ENDPOINT (and ZBK_TEST_S3_BUCKET, ZBK_TEST_S3_REGION,
 * ZBK_TEST_S3_PATH_STYLE=true|false, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY);
 * skipped otherwise. Writes only under a random prefix and removes it after.
 */
import { describe, it } from 'node:test';
import { S3Store } from '../../src/store/s3-store.js';
import { runStoreSuite } from './suite.js';

const endpoint = process.env.ZBK_TEST_S3_ENDPOINT;

if (!endpoint) {
  describe('S3Store against a live endpoint', () => {
    it('set ZBK_TEST_S3_ENDPOINT (see localstack/README.md) to run the store suite against LocalStack, MinIO or AWS', (t) => {
      t.skip('ZBK_TEST_S3_ENDPOINT is not set');
    });
  });
} else {
  const bucket = process.env.ZBK_TEST_S3_BUCKET ?? 'zbk-test';
  const region = process.env.ZBK_TEST_S3_REGION ?? 'us-east-1';
  const pathStyle = (process.env.ZBK_TEST_S3_PATH_STYLE ?? 'true') !== 'false';
  const id = process.env.AWS_ACCESS_KEY_ID;
  const secret = process.env.AWS_SECRET_ACCESS_KEY;
  runStoreSuite(`S3Store on ${endpoint}`, async () => {
    const store = new S3Store(
      {
        url: `s3://${bucket}/zbk-store-suite`,
        // "aws" means the real service: no endpoint override.
        ...(endpoint === 'aws' ? {} : { endpoint }),
        region,
        pathStyle,
        dataStorageClass: 'DEEP_ARCHIVE',
        metaStorageClass: 'STANDARD',
        checksumCalculation: (process.env.ZBK_TEST_S3_CHECKSUM as 'when_required' | undefined) ?? 'when_supported',
      },
      id && secret ? { credentials: { accessKeyId: id, secretAccessKey: secret } } : {},
    );
    // Real endpoints: 5 MiB parts; archive enforcement cannot be tested without waiting hours.
    return { store, cleanup: async () => store.destroy(), caps: { archive: false, minPartSize: 5 * 1024 * 1024 } };
  });
}
