/**
 * The contract suite against any S3 endpoint (LocalStack, MinIO, AWS,
 * another provider). Set ZBK_TEST_S3_ENDPOINT (and ZBK_TEST_S3_BUCKET,
 * ZBK_TEST_S3_REGION, ZBK_TEST_S3_PATH_STYLE=true|false,
 * ZBK_TEST_S3_CHECKSUM, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); skipped
 * otherwise. ZBK_TEST_S3_PROFILE names a provider profile
 * (src/cost/providers): its storage classes, restore mode, checksum setting
 * and addressing become the defaults (the variables above still override the
 * last two). Writes only under a random prefix and removes it after.
 */
import { describe, it } from 'node:test';
import { DEFAULT_PROVIDER, providerProfile } from '../../src/cost/providers/index.js';
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
  // An unknown name throws here, listing the known ones.
  const profile = providerProfile(process.env.ZBK_TEST_S3_PROFILE || DEFAULT_PROVIDER);
  const bucket = process.env.ZBK_TEST_S3_BUCKET ?? 'zbk-test';
  const region = process.env.ZBK_TEST_S3_REGION ?? 'us-east-1';
  // Unset: path style unless the profile is AWS's virtual-hosted one (the default profile keeps the old default, path style, for LocalStack and MinIO).
  const pathStyleEnv = process.env.ZBK_TEST_S3_PATH_STYLE;
  const pathStyle = pathStyleEnv === undefined ? !process.env.ZBK_TEST_S3_PROFILE || profile.addressing.pathStyle : pathStyleEnv !== 'false';
  const checksumEnv = process.env.ZBK_TEST_S3_CHECKSUM;
  if (checksumEnv !== undefined && checksumEnv !== 'when_supported' && checksumEnv !== 'when_required') throw new Error(`ZBK_TEST_S3_CHECKSUM must be when_supported or when_required, got ${checksumEnv}`);
  // The default profile keeps the old default (when_supported); another profile brings its own.
  const checksumCalculation = checksumEnv ?? (process.env.ZBK_TEST_S3_PROFILE ? profile.addressing.checksumCalculation : 'when_supported');
  const id = process.env.AWS_ACCESS_KEY_ID;
  const secret = process.env.AWS_SECRET_ACCESS_KEY;
  runStoreSuite(`S3Store on ${endpoint} (profile ${profile.name})`, async () => {
    const store = new S3Store(
      {
        url: `s3://${bucket}/zbk-store-suite`,
        // "aws" means the real service: no endpoint override.
        ...(endpoint === 'aws' ? {} : { endpoint }),
        region,
        pathStyle,
        provider: profile.name,
        dataStorageClass: profile.dataStorageClass,
        metaStorageClass: profile.metaStorageClass,
        checksumCalculation,
      },
      { restoreMode: profile.restore.semantics, ...(id && secret ? { credentials: { accessKeyId: id, secretAccessKey: secret } } : {}) },
    );
    // Real endpoints: 5 MiB parts; archive enforcement cannot be tested without waiting hours.
    return {
      store,
      cleanup: async () => store.destroy(),
      caps: {
        archive: false,
        minPartSize: profile.multipart.minPartSize,
        // The default profile round-trips STANDARD_IA too, as before profiles.
        classes: { data: profile.dataStorageClass, meta: profile.metaStorageClass, ...(process.env.ZBK_TEST_S3_PROFILE ? {} : { other: 'STANDARD_IA' }) },
        restore: profile.restore.semantics,
      },
    };
  });
}
