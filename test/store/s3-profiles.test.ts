/**
 * S3Store against the S3 test server emulating each provider profile's
 * quirks (test/s3-server/quirks.ts): the capability differences are asserted
 * on every profile — part limit, storage class names, restore with Days +
 * Tier, Days only, or no restore step.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PROFILE_NAMES, startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';
import { S3Store, type S3RestoreMode } from '../../src/store/s3-store.js';
import { ArchivedError, NotFoundError, PermanentStoreError } from '../../src/store/errors.js';
import { sha256b64 } from './suite.js';

const BUCKET = 'zbk-test';
const RESTORE_DELAY = 3_600_000;

function storeFor(server: S3TestServer, restoreMode?: S3RestoreMode): S3Store {
  return new S3Store(
    {
      url: `s3://${BUCKET}/pfx`,
      endpoint: server.endpoint,
      region: server.region,
      pathStyle: true,
      dataStorageClass: 'DEEP_ARCHIVE',
      metaStorageClass: 'STANDARD',
      checksumCalculation: 'when_supported',
    },
    { credentials: server.credentials, ...(restoreMode ? { restoreMode } : {}) },
  );
}

async function withProfile(profile: string, restoreMode: S3RestoreMode | undefined, fn: (store: S3Store, server: S3TestServer) => Promise<void>): Promise<void> {
  const server = await startS3TestServer({ profile, minPartSize: 64 * 1024, restoreDelayMs: RESTORE_DELAY, clock: new TestClock(new Date('2030-03-10T08:00:00Z')), buckets: [BUCKET] });
  const store = storeFor(server, restoreMode);
  try {
    await fn(store, server);
  } finally {
    store.destroy();
    await server.close();
  }
}

const isCode = (code: string) => (e: unknown) => e instanceof PermanentStoreError && e.code === code;

describe('S3 test server provider profiles', () => {
  it('every profile name starts a server reporting its quirks; an unknown one is refused with the names', async () => {
    for (const name of PROFILE_NAMES) {
      const s = await startS3TestServer({ profile: name });
      assert.equal(s.quirks.name, name);
      await s.close();
    }
    await assert.rejects(startS3TestServer({ profile: 'nope' }), /unknown profile nope \(one of aws-deep-archive, .*s3-hot\)/);
  });

  it('part limit: scaleway-glacier refuses part 1001 with InvalidArgument, AWS accepts it', async () => {
    await withProfile('scaleway-glacier', undefined, async (store) => {
      const id = await store.createMultipartUpload('mp', { storageClass: 'GLACIER' });
      const b = Buffer.from('x');
      assert.equal((await store.uploadPart('mp', id, 1000, b, sha256b64(b))).partNumber, 1000);
      await assert.rejects(store.uploadPart('mp', id, 1001, b, sha256b64(b)), isCode('INVALID_ARGUMENT'));
      await store.abortMultipartUpload('mp', id);
    });
    await withProfile('aws-deep-archive', undefined, async (store) => {
      const id = await store.createMultipartUpload('mp', { storageClass: 'DEEP_ARCHIVE' });
      const b = Buffer.from('x');
      assert.equal((await store.uploadPart('mp', id, 1001, b, sha256b64(b))).partNumber, 1001);
      await assert.rejects(store.uploadPart('mp', id, 10_001, b, sha256b64(b)), isCode('INVALID_ARGUMENT'));
      await store.abortMultipartUpload('mp', id);
    });
  });

  it('storage class names: each profile accepts its own and refuses others with InvalidStorageClass', async () => {
    const cases: [string, string[], string[]][] = [
      ['aws-deep-archive', ['STANDARD', 'DEEP_ARCHIVE', 'GLACIER', 'STANDARD_IA'], ['ARCHIVE']],
      ['scaleway-glacier', ['STANDARD', 'ONEZONE_IA', 'GLACIER'], ['DEEP_ARCHIVE', 'STANDARD_IA']],
      ['ovh-cold-archive', ['STANDARD', 'STANDARD_IA', 'DEEP_ARCHIVE'], ['GLACIER']],
      ['gcs-archive', ['STANDARD', 'NEARLINE', 'COLDLINE', 'ARCHIVE'], ['DEEP_ARCHIVE', 'GLACIER']],
      ['s3-hot', ['STANDARD'], ['DEEP_ARCHIVE', 'GLACIER']],
    ];
    for (const [profile, ok, refused] of cases) {
      await withProfile(profile, undefined, async (store) => {
        for (const c of ok) {
          await store.put(`c/${c}`, Buffer.from(c), { storageClass: c });
          assert.equal((await store.head(`c/${c}`)).storageClass, c, `${profile} ${c}`);
        }
        for (const c of refused) {
          await assert.rejects(store.put(`c/${c}`, Buffer.from(c), { storageClass: c }), isCode('INVALID_STORAGE_CLASS'), `${profile} ${c}`);
          await assert.rejects(store.createMultipartUpload(`m/${c}`, { storageClass: c }), isCode('INVALID_STORAGE_CLASS'), `${profile} ${c}`);
        }
      });
    }
  });

  it('scaleway-glacier: GLACIER is archived until RestoreObject with Days (+ Tier) completes', async () => {
    await withProfile('scaleway-glacier', undefined, async (store, server) => {
      const data = randomBytes(3000);
      await store.put('v', data, { storageClass: 'GLACIER' });
      await assert.rejects(store.get('v'), ArchivedError);
      assert.equal(await store.requestRestore('v', 1, 'Standard'), 'started');
      server.clock.advance(RESTORE_DELAY + 1000);
      assert.deepEqual(Buffer.from(await store.getBytes('v')), data);
    });
  });

  it('ovh-cold-archive (days-only): a restore carrying a Tier is refused; the store in days-only mode restores', async () => {
    await withProfile('ovh-cold-archive', undefined, async (tiered) => {
      await tiered.put('v', Buffer.from('cold'), { storageClass: 'DEEP_ARCHIVE' });
      await assert.rejects(tiered.requestRestore('v', 1, 'Bulk'), isCode('INVALID_ARGUMENT'), 'the server refuses a Tier');
    });
    await withProfile('ovh-cold-archive', 'days-only', async (store, server) => {
      const data = randomBytes(2000);
      await store.put('v', data, { storageClass: 'DEEP_ARCHIVE' });
      await assert.rejects(store.get('v'), ArchivedError);
      const before = server.accounting.requests.RestoreObject ?? 0;
      assert.equal(await store.requestRestore('v', 2, 'Bulk'), 'started');
      assert.equal(await store.requestRestore('v', 2, 'Bulk'), 'in-progress');
      assert.equal((server.accounting.requests.RestoreObject ?? 0) - before, 2);
      server.clock.advance(RESTORE_DELAY + 1000);
      assert.equal((await store.head('v')).restore.state, 'restored');
      assert.deepEqual(Buffer.from(await store.getBytes('v')), data);
    });
  });

  it('gcs-archive (no restore step): ARCHIVE is readable at once; RestoreObject is not implemented; the store in none mode sends none', async () => {
    await withProfile('gcs-archive', undefined, async (tiered) => {
      await tiered.put('v', Buffer.from('x'), { storageClass: 'ARCHIVE' });
      await assert.rejects(tiered.requestRestore('v', 1, 'Bulk'), isCode('NOT_IMPLEMENTED'));
    });
    await withProfile('gcs-archive', 'none', async (store, server) => {
      const data = randomBytes(4000);
      await store.put('v', data, { storageClass: 'ARCHIVE' });
      const info = await store.head('v');
      assert.equal(info.storageClass, 'ARCHIVE');
      assert.deepEqual(info.restore, { state: 'not-archived' });
      assert.deepEqual(Buffer.from(await store.getBytes('v')), data, 'readable with no restore');
      assert.equal(await store.requestRestore('v', 1, 'Bulk'), 'not-archived');
      await assert.rejects(store.requestRestore('missing', 1, 'Bulk'), NotFoundError);
      assert.equal(server.accounting.requests.RestoreObject ?? 0, 0, 'no RestoreObject sent');
    });
  });

  it('s3-hot: STANDARD readable at once; RestoreObject answers InvalidObjectState (not-archived)', async () => {
    await withProfile('s3-hot', undefined, async (store) => {
      const data = randomBytes(1000);
      await store.put('v', data);
      assert.deepEqual(Buffer.from(await store.getBytes('v')), data);
      assert.equal(await store.requestRestore('v', 1, 'Bulk'), 'not-archived');
    });
  });

  it('listings: AWS profiles report RestoreStatus, the others ignore OptionalObjectAttributes (the store says unknown)', async () => {
    for (const [profile, cls, honoured] of [
      ['aws-glacier', 'GLACIER', true],
      ['scaleway-glacier', 'GLACIER', false],
    ] as const) {
      await withProfile(profile, undefined, async (store) => {
        await store.put('l/a', Buffer.from('a'), { storageClass: cls });
        await store.put('l/b', Buffer.from('b'), { storageClass: cls });
        assert.equal(await store.requestRestore('l/a', 1, 'Bulk'), 'started');
        const listed = await store.listRestoreStates('l/');
        if (honoured) {
          assert.deepEqual(listed.get('l/a')!.restore, { state: 'in-progress' });
          assert.deepEqual(listed.get('l/b')!.restore, { state: 'archived' });
        } else {
          assert.equal(listed.get('l/a')!.restore, null, profile);
          assert.equal(listed.get('l/b')!.restore, null, profile);
        }
      });
    }
  });
});
