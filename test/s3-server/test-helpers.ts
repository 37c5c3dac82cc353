/** Shared helpers for the s3-server tests. */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { S3TestServer } from './index.js';

/** An SDK client pointed at `server` (path style, test credentials). */
export function clientFor(server: S3TestServer, extra: Partial<S3ClientConfig> = {}): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    credentials: server.credentials,
    forcePathStyle: true,
    ...extra,
  });
}

/** Deterministic pseudo-random bytes (xorshift), so tests need no fixtures. */
export function bytes(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** The S3 error name of a rejected SDK call (fails the test if it resolved). */
export async function errorName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { name: string }).name;
  }
  throw new Error('expected the call to fail');
}

/** HTTP status of a rejected SDK call. */
export async function errorStatus(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  }
  throw new Error('expected the call to fail');
}
