/** How S3 errors are classified: what is retried, what stops at once. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PermanentStoreError, TransientStoreError } from '../../src/store/errors.js';
import { toStoreError } from '../../src/store/s3-store.js';

test('a 501 (what an S3-compatible service does not implement) and a 505 stop at once; other 5xx are retried', () => {
  const notImpl = toStoreError({ name: 'NotImplemented', $metadata: { httpStatusCode: 501 } }, 'RestoreObject', 'data/x');
  assert.ok(notImpl instanceof PermanentStoreError);
  assert.equal(notImpl.code, 'NOT_IMPLEMENTED');
  assert.ok(!(toStoreError({ name: 'Unknown', $metadata: { httpStatusCode: 501 } }, 'PutObject', 'k') instanceof TransientStoreError));
  assert.ok(!(toStoreError({ name: 'Unknown', $metadata: { httpStatusCode: 505 } }, 'PutObject', 'k') instanceof TransientStoreError));
  for (const status of [500, 502, 503, 504]) assert.ok(toStoreError({ name: 'Unknown', $metadata: { httpStatusCode: status } }, 'PutObject', 'k') instanceof TransientStoreError, String(status));
});
