/**
 * Standalone entry: `node dist/test/s3-server/main.js [--port N] [--dir D]
 * [--restore-delay-ms N] [--min-part-size N] [--max-parts N] [--profile NAME]
 * [--bucket B]... [--anonymous]`. `--profile` (else the environment variable
 * ZBK_S3_TEST_PROFILE) emulates a provider: aws-deep-archive, aws-glacier,
 * scaleway-glacier, ovh-cold-archive, gcs-archive, s3-hot (see README.md).
 * Prints one JSON line `{"endpoint":…,"port":…,"region":…,"accessKeyId":…,
 * "secretAccessKey":…}` on stdout once listening; stops on SIGTERM/SIGINT.
 */
import { parseArgs } from 'node:util';
import { startS3TestServer } from './index.js';

const intOpt = (v: string | undefined, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} needs a non-negative integer, got ${v}`);
  return n;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      dir: { type: 'string' },
      'restore-delay-ms': { type: 'string' },
      'min-part-size': { type: 'string' },
      'max-parts': { type: 'string' },
      profile: { type: 'string' },
      bucket: { type: 'string', multiple: true },
      anonymous: { type: 'boolean' },
    },
  });
  const server = await startS3TestServer({
    port: intOpt(values.port, 'port'),
    persistDir: values.dir,
    restoreDelayMs: intOpt(values['restore-delay-ms'], 'restore-delay-ms'),
    minPartSize: intOpt(values['min-part-size'], 'min-part-size'),
    maxParts: intOpt(values['max-parts'], 'max-parts'),
    profile: values.profile ?? (process.env.ZBK_S3_TEST_PROFILE || undefined),
    buckets: values.bucket,
    anonymous: values.anonymous,
  });
  process.stdout.write(
    JSON.stringify({ endpoint: server.endpoint, port: server.port, region: server.region, profile: server.quirks.name, ...server.credentials }) + '\n',
  );
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`s3-test-server: ${(e as Error).message}\n`);
  process.exit(1);
});
