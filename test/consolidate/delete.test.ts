/**
 * Crash-safe deletion (src/services/consolidate/delete.ts) against a MemoryStore: finishing
 * an interrupted batch after retention changed, and a store that does not
 * answer for the repository.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { KEY_FILE_KEY, streamRecordKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { StreamWithVolumes } from '../../src/manifest/types.js';
import { finishPendingDeletion, PENDING_DELETE_KEY } from '../../src/services/consolidate/delete.js';
import { ExitCode } from '../../src/errors.js';
import { StoreError } from '../../src/store/errors.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { S3Store } from '../../src/store/s3-store.js';
import { startS3TestServer, TestClock } from '../s3-server/index.js';
import { simulatePush, snap, tempDir, testKeyring } from '../manifest/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});
let n = 0;
const t0 = Date.parse('2025-03-01T00:00:00Z');
const day = (i: number): Date => new Date(t0 + i * 86_400_000);
const DS = 'tank/lib';

interface Consolidated {
  m: Manifest;
  store: MemoryStore;
  /** The old chain s1 (full), s2, s3 (incrementals), all superseded by `full`. */
  old: StreamWithVolumes[];
  full: StreamWithVolumes;
}

/**
 * s1, s2, s3 pushed; a new full of s3 supersedes the old chain; a deletion
 * batch of the whole old chain was recorded (retention kept only s3) and the
 * process was killed before deleting anything.
 */
async function killedAfterRecording(): Promise<Consolidated> {
  const store = new MemoryStore({ minPartSize: 1, now: () => day(0) });
  await store.put(KEY_FILE_KEY, new Uint8Array([1]));
  const m = Manifest.open(join(tmp.dir, `m${n++}.db`));
  m.initRepository({ storeUrl: store.url, keyId: keyring.keyId });
  const s = [snap(`${DS}@s1`, 11n, 10n), snap(`${DS}@s2`, 12n, 20n), snap(`${DS}@s3`, 13n, 30n)];
  const old = [
    (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[0]!, volumes: [40, 9], at: day(0) }))!,
    (await simulatePush(m, store, keyring, { dataset: DS, from: s[0]!, to: s[1]!, volumes: [12], at: day(1) }))!,
    (await simulatePush(m, store, keyring, { dataset: DS, from: s[1]!, to: s[2]!, volumes: [12], at: day(2) }))!,
  ];
  const full = (await simulatePush(m, store, keyring, { dataset: DS, from: null, to: s[2]!, volumes: [30], at: day(3) }))!;
  m.markSuperseded(old.map((x) => x.streamId), day(3));
  m.setValue(PENDING_DELETE_KEY, {
    keys: old.flatMap((x) => x.volumes.map((v) => v.key)),
    records: old.map((x) => streamRecordKey(x.streamId)),
    at: day(400).toISOString(),
  });
  return { m, store, old, full };
}

describe('finishing an interrupted deletion batch', () => {
  it('keeps the stream records of streams whose volumes a grown retention still needs', async () => {
    const { m, store, old } = await killedAfterRecording();
    try {
      // Retention now keeps s2 as well: only s3's incremental is still unneeded.
      const s3inc = old[2]!;
      const still = new Set(s3inc.volumes.map((v) => v.key));
      const finished = await finishPendingDeletion(m, store, still, day(401));
      assert.deepEqual(finished.sort(), [...still].sort());
      const keys = new Set(store.keys());
      for (const x of old.slice(0, 2)) {
        for (const v of x.volumes) assert.ok(keys.has(v.key), `volume ${v.key} kept`);
        assert.ok(keys.has(streamRecordKey(x.streamId)), `stream record of @${x.to.name} kept with its volumes`);
        assert.equal(m.stream(x.streamId)?.state, 'superseded');
      }
      assert.ok(!keys.has(streamRecordKey(s3inc.streamId)), 'record of the wholly deleted stream deleted');
      assert.equal(m.stream(s3inc.streamId)?.state, 'deleted');
      assert.equal(m.getValue(PENDING_DELETE_KEY), undefined);
    } finally {
      m.close();
    }
  });
});

describe('finishing an interrupted deletion batch against a store that does not hold the repository', () => {
  const volumeStates = (m: Manifest, c: Consolidated): string[] => c.old.flatMap((x) => m.volumes(x.streamId).map((v) => v.state));

  it('fails with a store error and records nothing (wrong prefix: every HEAD is a 404)', async () => {
    const c = await killedAfterRecording();
    try {
      const before = volumeStates(c.m, c);
      const pending = c.m.getValue(PENDING_DELETE_KEY);
      const wrong = new MemoryStore({ minPartSize: 1, now: () => day(0) });
      const still = new Set(c.old[2]!.volumes.map((v) => v.key));
      await assert.rejects(finishPendingDeletion(c.m, wrong, still, day(401)), (e: unknown) => e instanceof StoreError && e.code === 'NO_REPOSITORY_IN_STORE' && e.exitCode === ExitCode.STORE);
      assert.deepEqual(volumeStates(c.m, c), before);
      assert.ok(before.every((s) => s === 'complete'));
      assert.deepEqual(c.m.getValue(PENDING_DELETE_KEY), pending);
      for (const x of c.old) assert.ok(c.store.keys().includes(streamRecordKey(x.streamId)));
    } finally {
      c.m.close();
    }
  });

  it('fails with NO_SUCH_BUCKET against a missing S3 bucket and records nothing', async () => {
    const server = await startS3TestServer({ clock: new TestClock(new Date(t0)), buckets: ['zbk'] });
    const c = await killedAfterRecording();
    try {
      const s3 = new S3Store(
        { url: 's3://no-such-bucket/backups', endpoint: server.endpoint, region: server.region, pathStyle: true, dataStorageClass: 'DEEP_ARCHIVE', metaStorageClass: 'STANDARD', checksumCalculation: 'when_supported' },
        { credentials: server.credentials },
      );
      const before = volumeStates(c.m, c);
      await assert.rejects(finishPendingDeletion(c.m, s3, new Set(), day(401)), (e: unknown) => e instanceof StoreError && e.code === 'NO_SUCH_BUCKET');
      assert.deepEqual(volumeStates(c.m, c), before);
      assert.notEqual(c.m.getValue(PENDING_DELETE_KEY), undefined);
    } finally {
      c.m.close();
      await server.close();
    }
  });

  it('still marks a key deleted when the repository is there and only the key is gone', async () => {
    const c = await killedAfterRecording();
    try {
      const s1 = c.old[0]!;
      await c.store.deleteMany([s1.volumes[0]!.key]);
      const finished = await finishPendingDeletion(c.m, c.store, new Set(), day(401));
      assert.deepEqual(finished, [s1.volumes[0]!.key]);
      assert.equal(c.m.volumes(s1.streamId)[0]!.state, 'deleted');
      assert.equal(c.m.volumes(s1.streamId)[1]!.state, 'complete');
    } finally {
      c.m.close();
    }
  });
});
