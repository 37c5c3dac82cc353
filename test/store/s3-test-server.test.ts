/**
 * S3Store (and RetryingStore over it) against the in-process S3 test server:
 * the contract suite (once per provider profile) plus the behaviour only a real HTTP path shows —
 * pagination of ListParts, faults on the wire, restore timing, request counts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startS3TestServer, TestClock, type S3TestServer } from '../s3-server/index.js';
import { GetBucketLifecycleConfigurationCommand, PutBucketLifecycleConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { ABORT_RULE_ID, S3Store, abortRuleId } from '../../src/store/s3-store.js';
import { RetryingStore } from '../../src/store/retry-store.js';
import { openStore } from '../../src/store/open-store.js';
import { AccessDeniedError, ArchivedError, NotFoundError, PermanentStoreError } from '../../src/store/errors.js';
import type { StoreConfig } from '../../src/config/config.js';
import type { UploadedPart } from '../../src/store/object-store.js';
import { PROVIDER_NAMES, providerProfile } from '../../src/cost/providers/index.js';
import { readAll, runStoreSuite, sha256b64 } from './suite.js';

const MIN = 64 * 1024;
const RESTORE_DELAY = 3_600_000;
const BUCKET = 'zbk-test';
const DAY = 86_400_000;

function cfgFor(server: S3TestServer, url = `s3://${BUCKET}/pfx`): StoreConfig {
  return {
    url,
    endpoint: server.endpoint,
    region: server.region,
    pathStyle: true,
    dataStorageClass: 'DEEP_ARCHIVE',
    metaStorageClass: 'STANDARD',
    checksumCalculation: 'when_supported',
  };
}

async function startServer(opts: { persistDir?: string } = {}): Promise<S3TestServer> {
  const clock = new TestClock(new Date('2030-03-10T08:00:00Z'));
  return startS3TestServer({ minPartSize: MIN, restoreDelayMs: RESTORE_DELAY, clock, buckets: [BUCKET], ...opts });
}

function requests(server: S3TestServer, op: string): number {
  return server.accounting.requests[op] ?? 0;
}

/**
 * The contract suite once per provider profile, on a server emulating that
 * profile's quirks (test/s3-server/quirks.ts), with the profile's storage
 * classes, restore mode and checksum setting. The full suite runs on
 * aws-deep-archive; on the others the >1,000-key pagination test is left out
 * (it takes ~10 s of the 2 shared CPUs and does not depend on the profile:
 * listing pages are the same on every one).
 */
for (const name of PROVIDER_NAMES) {
  const profile = providerProfile(name);
  runStoreSuite(`S3Store on the S3 test server emulating ${name}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zbk-s3srv-'));
    const start = (o: { clock?: TestClock; port?: number }): Promise<S3TestServer> =>
      startS3TestServer({ profile: name, minPartSize: MIN, restoreDelayMs: RESTORE_DELAY, clock: o.clock ?? new TestClock(new Date('2030-03-10T08:00:00Z')), persistDir: dir, ...(o.port ? { port: o.port } : { buckets: [BUCKET] }) });
    let server = await start({});
    const stores: S3Store[] = [];
    const make = (): S3Store => {
      const cfg: StoreConfig = {
        ...cfgFor(server),
        provider: name,
        dataStorageClass: profile.dataStorageClass,
        metaStorageClass: profile.metaStorageClass,
        checksumCalculation: profile.addressing.checksumCalculation,
      };
      const s = new S3Store(cfg, { credentials: server.credentials, restoreMode: profile.restore.semantics });
      stores.push(s);
      return s;
    };
    const store = make();
    return {
      store,
      caps: {
        archive: profile.restore.semantics !== 'none',
        minPartSize: MIN,
        advanceClock: (ms) => server.clock.advance(ms),
        restoreDelayMs: RESTORE_DELAY,
        manyKeys: name === 'aws-deep-archive',
        classes: { data: profile.dataStorageClass, meta: profile.metaStorageClass },
        restore: profile.restore.semantics,
        listsRestoreStatus: server.quirks.restoreStatusInLists,
      },
      // A new server process over the same persisted state, and a new client: a crash and restart.
      reopen: async () => {
        const { clock, port } = server;
        await server.close();
        // Same port, so the first client (used by the suite's cleanup) still reaches it.
        server = await start({ clock, port });
        return make();
      },
      cleanup: async () => {
        for (const s of stores) s.destroy();
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  });
}

describe('S3Store on the S3 test server', () => {
  let server: S3TestServer;
  let store: S3Store;
  before(async () => {
    server = await startServer();
    store = new S3Store(cfgFor(server), { credentials: server.credentials });
  });
  after(async () => {
    store.destroy();
    await server.close();
  });

  it('lists more than 1,000 parts across ListParts pages', async () => {
    const key = 'many-parts';
    const id = await store.createMultipartUpload(key);
    const body = Buffer.from('p');
    const numbers = Array.from({ length: 1003 }, (_, i) => i + 1);
    let i = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (i < numbers.length) {
          const n = numbers[i++]!;
          await store.uploadPart(key, id, n, body, sha256b64(body));
        }
      }),
    );
    const before = requests(server, 'ListParts');
    const parts = await store.listParts(key, id);
    assert.deepEqual(
      parts.map((p) => p.partNumber),
      numbers,
    );
    assert.ok(requests(server, 'ListParts') - before >= 2, 'more than one page');
    await store.abortMultipartUpload(key, id);
  });

  it('keys live under the URL prefix; the store strips it', async () => {
    await store.put('x/y', Buffer.from('1'));
    const other = new S3Store(cfgFor(server, `s3://${BUCKET}`), { credentials: server.credentials });
    try {
      const keys: string[] = [];
      for await (const e of other.list('pfx/x/')) keys.push(e.key);
      assert.deepEqual(keys, ['pfx/x/y']);
      const mine: string[] = [];
      for await (const e of store.list('x/')) mine.push(e.key);
      assert.deepEqual(mine, ['x/y']);
    } finally {
      other.destroy();
      await store.deleteMany(['x/y']);
    }
  });

  it('a wrong part checksum is a PermanentStoreError BAD_DIGEST and nothing is stored', async () => {
    const id = await store.createMultipartUpload('digest');
    const a = randomBytes(MIN);
    await assert.rejects(store.uploadPart('digest', id, 1, a, sha256b64(randomBytes(8))), (e) => e instanceof PermanentStoreError && e.code === 'BAD_DIGEST');
    assert.deepEqual(await store.listParts('digest', id), []);
    await store.abortMultipartUpload('digest', id);
    await assert.rejects(store.head('digest'), NotFoundError);
  });

  it('restore flow: ArchivedError → started → in-progress → restored → readable → expired', async () => {
    const key = 'deep/vol';
    const data = randomBytes(5000);
    await store.put(key, data, { storageClass: 'DEEP_ARCHIVE' });
    await assert.rejects(store.get(key), (e) => e instanceof ArchivedError && e.storageClass === 'DEEP_ARCHIVE');
    assert.equal(await store.requestRestore(key, 1, 'Bulk'), 'started');
    assert.equal(await store.requestRestore(key, 1, 'Bulk'), 'in-progress');
    assert.deepEqual((await store.head(key)).restore, { state: 'in-progress' });
    server.clock.advance(RESTORE_DELAY + 1000);
    const info = await store.head(key);
    assert.equal(info.restore.state, 'restored');
    assert.deepEqual(Buffer.from(await store.getBytes(key)), data);
    assert.equal(await store.requestRestore(key, 1, 'Bulk'), 'already-restored');
    server.clock.advance(3 * DAY);
    await assert.rejects(store.get(key), ArchivedError);
    await store.deleteMany([key]);
  });

  it('listRestoreStates: one ListObjectsV2 with OptionalObjectAttributes=RestoreStatus per 1,000 objects, counted by the server', async () => {
    const keys = Array.from({ length: 2345 }, (_, i) => `states/${String(i).padStart(5, '0')}`);
    let i = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (i < keys.length) await store.put(keys[i++]!, Buffer.from('v'), { storageClass: 'DEEP_ARCHIVE' });
      }),
    );
    assert.equal(await store.requestRestore(keys[7]!, 2, 'Bulk'), 'started');
    const lists = requests(server, 'ListObjectsV2');
    const heads = requests(server, 'HeadObject');
    const withStatus = { ...server.accounting.restoreStatusLists };
    const listed = await store.listRestoreStates('states/');
    assert.equal(listed.size, keys.length);
    assert.equal(requests(server, 'ListObjectsV2') - lists, 3, '⌈2345 / 1000⌉ LISTs');
    assert.equal(requests(server, 'HeadObject') - heads, 0, 'no HEAD');
    assert.deepEqual(server.accounting.restoreStatusLists, { requests: withStatus.requests + 3, objects: withStatus.objects + keys.length });
    assert.deepEqual(listed.get(keys[7]!)!.restore, { state: 'in-progress' });
    // The status on keys[7] shows the parameter is honoured: the others, without one, are archived.
    assert.ok(keys.every((k, n) => n === 7 || listed.get(k)!.restore?.state === 'archived'));
    await store.deleteMany(keys);
  });

  it('listRestoreStates on an endpoint that ignores OptionalObjectAttributes: archived objects are unknown (null), never a wrong state', async () => {
    const quiet = await startS3TestServer({ minPartSize: MIN, restoreDelayMs: RESTORE_DELAY, clock: new TestClock(new Date('2030-03-10T08:00:00Z')), buckets: [BUCKET], restoreStatusInLists: false });
    const s = new S3Store(cfgFor(quiet), { credentials: quiet.credentials });
    try {
      await s.put('d/running', Buffer.from('r'), { storageClass: 'DEEP_ARCHIVE' });
      await s.put('d/cold', Buffer.from('c'), { storageClass: 'GLACIER' });
      await s.put('d/std', Buffer.from('s'));
      assert.equal(await s.requestRestore('d/running', 1, 'Bulk'), 'started');
      const listed = await s.listRestoreStates('d/');
      assert.equal(listed.get('d/running')!.restore, null, 'HEAD would say in-progress: the listing must not say archived');
      assert.equal(listed.get('d/cold')!.restore, null);
      assert.deepEqual(listed.get('d/std')!.restore, { state: 'not-archived' });
      assert.deepEqual((await s.head('d/running')).restore, { state: 'in-progress' });
      assert.equal(quiet.accounting.restoreStatusLists.requests, 1, 'asked, and counted, even though ignored');
    } finally {
      s.destroy();
      await quiet.close();
    }
  });

  it('a permanent 403 surfaces at once, without a retry storm', async () => {
    const events: string[] = [];
    const retrying = new RetryingStore(store, { retries: 5, minTimeoutMs: 1, maxTimeoutMs: 2 }, { onRetry: (e) => events.push(e.method) });
    server.addFault({ operation: 'HeadObject', kind: 'access-denied' });
    try {
      const before = requests(server, 'HeadObject');
      await assert.rejects(retrying.head('anything'), AccessDeniedError);
      assert.equal(requests(server, 'HeadObject') - before, 1);
      assert.deepEqual(events, []);
    } finally {
      server.clearFaults();
    }
  });

  it('callerIdentity answers through STS on the same endpoint', async () => {
    const id = await store.callerIdentity();
    assert.ok(id && /^\d{12}$/.test(id.account) && id.arn.startsWith('arn:aws:'));
  });

  it('lifecycle: detects and adds the abort-incomplete-uploads rule; bucket region', async () => {
    assert.equal(await store.hasAbortIncompleteUploadsRule(), false);
    await store.putAbortIncompleteUploadsRule(7);
    assert.equal(await store.hasAbortIncompleteUploadsRule(), true);
    assert.equal(await store.bucketRegion(), 'us-east-1');
  });
});

describe('lifecycle rules of several repositories in one bucket', () => {
  it("each repository's rule is its own, merged with the bucket's other rules; an older zbk's rule is replaced only for its prefix", async () => {
    const server = await startServer();
    const client = new S3Client({ endpoint: server.endpoint, region: server.region, forcePathStyle: true, credentials: server.credentials });
    try {
      const rulesNow = async () => (await client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: BUCKET }))).Rules ?? [];
      // The owner's own rule, and one an older zbk wrote for the photos repository (one id per bucket).
      await client.send(
        new PutBucketLifecycleConfigurationCommand({
          Bucket: BUCKET,
          LifecycleConfiguration: {
            Rules: [
              { ID: 'owner-expire-logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 } },
              { ID: ABORT_RULE_ID, Status: 'Enabled', Filter: { Prefix: 'photos/' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 } },
            ],
          },
        }),
      );
      const photos = new S3Store(cfgFor(server, `s3://${BUCKET}/photos`), { credentials: server.credentials });
      const docs = new S3Store(cfgFor(server, `s3://${BUCKET}/docs`), { credentials: server.credentials });
      assert.equal(await docs.hasAbortIncompleteUploadsRule(), false);
      await docs.putAbortIncompleteUploadsRule(7);
      assert.equal(await photos.hasAbortIncompleteUploadsRule(), true, "the docs repository's fix kept the photos rule");
      assert.equal(await docs.hasAbortIncompleteUploadsRule(), true);
      await photos.putAbortIncompleteUploadsRule(5);
      const rules = await rulesNow();
      const byPrefix = new Map(rules.map((r) => [r.Filter?.Prefix ?? '', r]));
      assert.deepEqual([...byPrefix.keys()].sort(), ['docs/', 'logs/', 'photos/'], JSON.stringify(rules));
      assert.equal(byPrefix.get('logs/')?.ID, 'owner-expire-logs');
      assert.equal(byPrefix.get('photos/')?.ID, abortRuleId('photos/'), "the older zbk's photos rule was replaced, not duplicated");
      assert.equal(byPrefix.get('photos/')?.AbortIncompleteMultipartUpload?.DaysAfterInitiation, 5);
      assert.equal(byPrefix.get('docs/')?.ID, abortRuleId('docs/'));
      assert.notEqual(abortRuleId('docs/'), abortRuleId('photos/'));
    } finally {
      client.destroy();
      await server.close();
    }
  });
});

describe('RetryingStore(S3Store) under injected faults', () => {
  it('a multi-part upload and ranged reads complete with identical bytes despite 20% transient faults', async () => {
    let seed = 42;
    const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const server = await startS3TestServer({ minPartSize: MIN, buckets: [BUCKET], random });
    const retries: string[] = [];
    const store = openStore(cfgFor(server), {
      credentials: server.credentials,
      retry: { retries: 12, minTimeoutMs: 1, maxTimeoutMs: 5 },
      onRetry: (e) => retries.push(e.method),
    });
    try {
      for (const kind of ['internal-error', 'slow-down', 'reset'] as const) {
        server.addFault({ operation: ['CreateMultipartUpload', 'UploadPart', 'ListParts', 'CompleteMultipartUpload', 'HeadObject'], kind, probability: 0.07 });
      }
      const key = 'faulty/vol';
      const parts = Array.from({ length: 8 }, (_, i) => randomBytes(i === 7 ? 1234 : MIN));
      const id = await store.createMultipartUpload(key, { storageClass: 'STANDARD' });
      const acked: UploadedPart[] = [];
      for (const [i, p] of parts.entries()) acked.push(await store.uploadPart(key, id, i + 1, p, sha256b64(p)));
      const listed = await store.listParts(key, id);
      assert.deepEqual(
        listed.map((p) => [p.partNumber, p.etag]),
        acked.map((p) => [p.partNumber, p.etag]),
      );
      await store.completeMultipartUpload(key, id, listed);
      server.clearFaults();
      const whole = Buffer.concat(parts);
      assert.deepEqual(await readAll(await store.get(key)), whole);
      assert.ok(retries.length > 0, 'faults were injected and retried');
      assert.equal(store.kind, 's3');
    } finally {
      store.s3?.destroy();
      await server.close();
    }
  });
});
