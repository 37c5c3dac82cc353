import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { ManifestError } from '../../src/errors.js';
import { volumeKey } from '../../src/layout.js';
import { BrokenChainError, SnapshotNotPushedError } from '../../src/manifest/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import type { StreamWithVolumes } from '../../src/manifest/types.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { simulatePush, snap, tempDir, testKeyring } from './helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});

function setup(): { m: Manifest; store: MemoryStore } {
  return { m: Manifest.open(join(tmp.dir, `m${n++}.db`)), store: new MemoryStore({ minPartSize: 1 }) };
}

const code = (c: string) => (err: unknown) => err instanceof ManifestError && err.code === c;
const t0 = new Date('2025-01-01T00:00:00Z');
const day = (i: number): Date => new Date(t0.getTime() + i * 86_400_000);

const A = snap('tank/a@1', 11n, 100n);
const B = snap('tank/a@2', 12n, 200n);
const C = snap('tank/a@3', 13n, 300n);
const D = snap('tank/a@4', 18446744073709551614n, 400n);

describe('push lifecycle', () => {
  it('records checkpoints, exposes the in-flight stream, completes in one step', async () => {
    const { m, store } = setup();
    try {
      const id = 'ab'.repeat(16);
      m.beginStream({ streamId: id, dataset: 'tank/a', from: null, to: A, volumeSize: 16, partSize: 8, startedAt: t0 });
      assert.throws(() => m.beginStream({ streamId: 'cd'.repeat(16), dataset: 'tank/a', from: null, to: A, volumeSize: 16, partSize: 8 }), code('STREAM_IN_FLIGHT'));
      const key = volumeKey(id, 0);
      assert.throws(() => m.recordVolumeStarted(id, 0, volumeKey(id, 1), 'u', 'DEEP_ARCHIVE'), code('BAD_INPUT'));
      const uploadId = await store.createMultipartUpload(key);
      m.recordVolumeStarted(id, 0, key, uploadId, 'DEEP_ARCHIVE');
      const ack = { streamId: id, volumeIndex: 0, plaintextSize: 8, plaintextSha256: '0'.repeat(64), sealedSize: 60, etag: 'e' };
      m.recordPartAcknowledged({ ...ack, partNumber: 2 });
      m.recordPartAcknowledged({ ...ack, partNumber: 1 });
      m.recordPartAcknowledged({ ...ack, partNumber: 1, etag: 'e2' }); // re-upload replaces
      assert.deepEqual(m.partsOf(id, 0).map((p) => [p.partNumber, p.etag]), [[1, 'e2'], [2, 'e']]);
      assert.throws(() => m.recordPartAcknowledged({ ...ack, volumeIndex: 5, partNumber: 1 }), code('NOT_UPLOADING'));

      const inflight = m.findInFlightStream('tank/a');
      assert.equal(inflight?.streamId, id);
      assert.equal(inflight?.volumes[0]?.uploadId, uploadId);
      assert.deepEqual(m.inFlightUploads().map((u) => [u.key, u.uploadId, u.dataset]), [[key, uploadId, 'tank/a']]);

      assert.throws(() => m.completeStream(id, { plaintextSize: 16, storedSize: 120 }), code('INCOMPLETE_STREAM'));
      m.recordVolumeCompleted({ streamId: id, volumeIndex: 0, storedSize: 120, partCount: 2, plaintextSize: 16, plaintextSha256: 'a'.repeat(64) });
      assert.deepEqual(m.partsOf(id, 0), []);
      assert.deepEqual(m.inFlightUploads(), []);
      assert.throws(() => m.completeStream(id, { plaintextSize: 17, storedSize: 120 }), code('INCOMPLETE_STREAM'));
      const done = m.completeStream(id, { plaintextSize: 16, storedSize: 120, completedAt: day(1) });
      assert.equal(done.state, 'complete');
      assert.equal(m.findInFlightStream('tank/a'), null);
      assert.equal(m.lastPushedSnapshot('tank/a')?.guid, A.guid);
      assert.deepEqual(m.snapshots('tank/a').map((s) => s.name), ['tank/a@1']);
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
  });

  it('refuses an incremental whose base was never pushed', () => {
    const { m } = setup();
    try {
      assert.throws(
        () => m.beginStream({ streamId: '1'.repeat(32), dataset: 'tank/a', from: A, to: B, volumeSize: 8, partSize: 8 }),
        code('BASE_NOT_PUSHED'),
      );
    } finally {
      m.close();
    }
  });

  it('abandon keeps upload ids listed for cleanup and frees the dataset', async () => {
    const { m, store } = setup();
    try {
      await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [20], at: day(0), interrupt: true });
      const s = m.findInFlightStream('tank/a')!;
      // A second volume left mid-upload.
      const key = volumeKey(s.streamId, 1);
      m.recordVolumeStarted(s.streamId, 1, key, 'upload-1', 'DEEP_ARCHIVE');
      m.abandonStream(s.streamId, 'snapshot destroyed');
      assert.equal(m.stream(s.streamId)?.state, 'abandoned');
      assert.deepEqual(m.inFlightUploads().map((u) => [u.key, u.streamState]), [[key, 'abandoned']]);
      m.recordUploadAborted(key, 'upload-1');
      assert.deepEqual(m.inFlightUploads(), []);
      // The completed volume of the abandoned stream is a deletion candidate.
      assert.deepEqual(m.unneededObjects(new Set()).map((o) => o.key), [volumeKey(s.streamId, 0)]);
      assert.equal(m.findInFlightStream('tank/a'), null);
      assert.equal(m.events(10)[0]?.kind, 'stream-abandoned');
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
  });

  it('abandon with the uploads aborted in the store marks them aborted in the same transaction, or changes nothing', async () => {
    const { m, store } = setup();
    try {
      await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [20], at: day(0), interrupt: true });
      const s = m.findInFlightStream('tank/a')!;
      const key = volumeKey(s.streamId, 1);
      m.recordVolumeStarted(s.streamId, 1, key, 'upload-1', 'DEEP_ARCHIVE');
      m.recordPartAcknowledged({ streamId: s.streamId, volumeIndex: 1, partNumber: 1, plaintextSize: 8, plaintextSha256: '0'.repeat(64), sealedSize: 60, etag: 'e' });
      // An upload this stream does not hold: refused, and the stream is still uploading with its upload.
      assert.throws(() => m.abandonStream(s.streamId, 'resume mismatch', [{ key, uploadId: 'upload-other' }]), code('BAD_INPUT'));
      assert.equal(m.stream(s.streamId)?.state, 'uploading');
      assert.deepEqual(m.inFlightUploads().map((u) => u.uploadId), ['upload-1']);
      m.abandonStream(s.streamId, 'resume mismatch', [{ key, uploadId: 'upload-1' }]);
      assert.equal(m.stream(s.streamId)?.state, 'abandoned');
      assert.deepEqual(m.volumes(s.streamId).map((v) => [v.state, v.uploadId]), [['complete', null], ['aborted', null]]);
      assert.deepEqual(m.partsOf(s.streamId, 1), []);
      assert.deepEqual(m.inFlightUploads(), []);
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
  });
});

describe('chains', () => {
  it('resolves full + incrementals in order, for the latest or a given snapshot, per dataset', async () => {
    const { m, store } = setup();
    try {
      const full = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [20, 5], at: day(0) });
      const i1 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: A, to: B, volumes: [9], at: day(1) });
      const other = await simulatePush(m, store, keyring, { dataset: 'tank/b', from: null, to: snap('tank/b@x', 99n, 150n), volumes: [3], at: day(1) });
      const i2 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: B, to: C, volumes: [4], at: day(2) });
      const i3 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: C, to: D, volumes: [4], at: day(3) });

      const chain = m.chainFor('tank/a');
      assert.deepEqual(chain.map((s) => s.streamId), [full, i1, i2, i3].map((s) => s!.streamId));
      assert.equal(chain[0]!.volumes.length, 2);
      for (let i = 1; i < chain.length; i++) assert.equal(chain[i]!.from!.guid, chain[i - 1]!.to.guid);
      assert.deepEqual(m.chainFor('tank/a', B.guid).map((s) => s.streamId), [full!.streamId, i1!.streamId]);
      assert.deepEqual(m.chainFor('tank/b').map((s) => s.streamId), [other!.streamId]);
      assert.equal(m.lastPushedSnapshot('tank/a')?.guid, D.guid);
      assert.deepEqual(m.datasets().map((d) => d.name), ['tank/a', 'tank/b']);
      assert.throws(() => m.chainFor('tank/a', 424242n), (e: unknown) => e instanceof SnapshotNotPushedError);
      assert.throws(() => m.chainFor('tank/none'), (e: unknown) => e instanceof SnapshotNotPushedError);
    } finally {
      m.close();
    }
  });

  it('prefers a cheaper chain after consolidation, and names the missing link of a broken chain', async () => {
    const { m, store } = setup();
    try {
      const full = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [40], at: day(0) });
      const i1 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: A, to: B, volumes: [30], at: day(1) });
      const i2 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: B, to: C, volumes: [30], at: day(2) });
      const rebase = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: C, volumes: [50], at: day(3) });
      assert.deepEqual(m.chainFor('tank/a').map((s) => s.streamId), [rebase!.streamId]);
      // Old chain objects are only needed while B must stay restorable.
      const keysOf = (ids: string[]) => ids.flatMap((id) => m.volumes(id).map((v) => v.key)).sort();
      assert.deepEqual(m.unneededObjects(new Set()).map((o) => o.key), keysOf([full!.streamId, i1!.streamId, i2!.streamId]));
      assert.deepEqual(m.unneededObjects(new Set([B.guid.toString()])).map((o) => o.key), keysOf([i2!.streamId]));

      m.markSuperseded([i1!.streamId]);
      assert.equal(m.stream(i1!.streamId)?.state, 'superseded');
      // B is kept: its chain through the superseded i1 must stay.
      assert.deepEqual(m.unneededObjects(new Set([B.guid.toString()])).map((o) => o.key), keysOf([i2!.streamId]));
      assert.deepEqual(m.unneededObjects(new Set()).map((o) => o.key), keysOf([full!.streamId, i1!.streamId, i2!.streamId]));
      // Refuse to supersede what the latest snapshot still needs (rolled back as a whole).
      assert.throws(() => m.markSuperseded([full!.streamId, rebase!.streamId]), code('LAST_SNAPSHOT_UNRESTORABLE'));
      assert.equal(m.stream(rebase!.streamId)?.state, 'complete');
      assert.equal(m.stream(full!.streamId)?.state, 'complete');
      // With i1 superseded but wholly stored, B is still restorable through it (what retention kept is what restore reaches).
      assert.deepEqual(m.chainFor('tank/a', B.guid).map((s) => s.streamId), [full!.streamId, i1!.streamId]);
      // Once i1's objects are gone, B is no longer restorable.
      m.markVolumesDeleted(m.volumes(i1!.streamId).map((v) => v.key), day(4));
      assert.throws(() => m.chainFor('tank/a', B.guid), (e: unknown) => e instanceof SnapshotNotPushedError);
      // Losing the rebase leaves C reachable only through i2, whose base B has no stream: the missing link.
      m.markVolumesDeleted(m.volumes(rebase!.streamId).map((v) => v.key), day(4));
      let broken: unknown;
      try {
        m.chainFor('tank/a');
      } catch (err) {
        broken = err;
      }
      assert.ok(broken instanceof BrokenChainError, String(broken));
      assert.equal(broken.missing.guid, B.guid);
      assert.equal(broken.missing.name, B.name);
      assert.equal(broken.neededBy, i2!.streamId);
      assert.match(broken.message, /tank\/a@2/);
      assert.equal(m.stream(rebase!.streamId)?.state, 'deleted');
      assert.equal(m.integrityCheck().ok, false);
      assert.throws(() => m.unneededObjects(new Set()), (e: unknown) => e instanceof BrokenChainError);
    } finally {
      m.close();
    }
  });

  it('an incremental follows only a stream of its own kind (raw -w or not), even where a cheaper one of the other kind ends at its base', async () => {
    const { m, store } = setup();
    try {
      // An older zbk sent the encrypted dataset decrypted (no flags recorded, then -c); a consolidation re-based it raw at B;
      // an incremental pushed before that consolidation superseded the old chain was built on the old, non-raw one.
      const full = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [40], at: day(0) });
      const i1 = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: A, to: B, volumes: [8], at: day(1), sendFlags: ['-c'] });
      const rawFull = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: B, volumes: [10], at: day(2), sendFlags: ['-w', '-c'] });
      const plainInc = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: B, to: C, volumes: [4], at: day(3), sendFlags: ['-c'] });
      const ids = (chain: StreamWithVolumes[]): string[] => chain.map((s) => s.streamId);
      assert.deepEqual(ids(m.chainFor('tank/a', B.guid)), [rawFull!.streamId], 'B alone: the cheaper raw full');
      assert.deepEqual(ids(m.chainFor('tank/a', C.guid)), [full!, i1!, plainInc!].map((s) => s.streamId), 'C: never the raw full under a non-raw incremental');
      // The old chain is what the latest snapshot needs: superseding it is refused.
      assert.throws(() => m.markSuperseded([full!.streamId, i1!.streamId]), code('LAST_SNAPSHOT_UNRESTORABLE'));
      // A raw incremental from B builds on the raw full.
      const rawInc = await simulatePush(m, store, keyring, { dataset: 'tank/a', from: B, to: D, volumes: [4], at: day(4), sendFlags: ['-w', '-c'] });
      assert.deepEqual(ids(m.chainFor('tank/a', D.guid)), [rawFull!.streamId, rawInc!.streamId]);
      // Without the old chain's objects, C has no base of its kind: the missing link is named, not a mixed chain offered.
      m.markVolumesDeleted(m.volumes(i1!.streamId).map((v) => v.key), day(5));
      let broken: unknown;
      try {
        m.chainFor('tank/a', C.guid);
      } catch (err) {
        broken = err;
      }
      assert.ok(broken instanceof BrokenChainError, String(broken));
      assert.equal(broken.missing.guid, B.guid);
      assert.equal(broken.neededBy, plainInc!.streamId);
    } finally {
      m.close();
    }
  });

  it('never offers objects of an uploading stream for deletion', async () => {
    const { m, store } = setup();
    try {
      await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: A, volumes: [10], at: day(0) });
      await simulatePush(m, store, keyring, { dataset: 'tank/a', from: null, to: B, volumes: [10], at: day(1), interrupt: true });
      assert.deepEqual(m.unneededObjects(new Set()), []);
    } finally {
      m.close();
    }
  });
});

describe('events and repository', () => {
  it('logs events newest first with JSON detail (bigints as strings)', () => {
    const { m } = setup();
    try {
      m.logEvent('push', 'tank/a', { guid: 18446744073709551615n, bytes: 5 });
      m.logEvent('check', null, null);
      const ev = m.events(5);
      assert.deepEqual(ev.map((e) => e.kind), ['check', 'push']);
      assert.deepEqual(ev[1]!.detail, { guid: '18446744073709551615', bytes: 5 });
    } finally {
      m.close();
    }
  });

  it('records the repository once and refuses a different one', () => {
    const { m } = setup();
    try {
      assert.equal(m.repository(), null);
      m.initRepository({ storeUrl: 's3://b/p', keyId: '0011223344556677' });
      m.initRepository({ storeUrl: 's3://b/p', keyId: '0011223344556677' });
      assert.throws(() => m.initRepository({ storeUrl: 's3://other', keyId: '0011223344556677' }), code('REPOSITORY_MISMATCH'));
      assert.equal(m.repository()?.storeUrl, 's3://b/p');
    } finally {
      m.close();
    }
  });
});

describe('send flags', () => {
  /** One part of one volume of stream `id`, stored and completed (`completeStream` left to the test). */
  async function oneVolume(m: Manifest, store: MemoryStore, id: string): Promise<void> {
    const key = volumeKey(id, 0);
    m.recordVolumeStarted(id, 0, key, await store.createMultipartUpload(key), 'DEEP_ARCHIVE');
    m.recordVolumeCompleted({ streamId: id, volumeIndex: 0, storedSize: 60, partCount: 1, plaintextSize: 8, plaintextSha256: 'a'.repeat(64) });
  }

  it('are recorded per stream as begun, null when not given, and a stream begun without them gets them at completion', async () => {
    const { m, store } = setup();
    try {
      const raw = 'a1'.repeat(16);
      m.beginStream({ streamId: raw, dataset: 'tank/a', from: null, to: A, volumeSize: 16, partSize: 8, sendFlags: ['-w', '-c', '-L', '-e'] });
      assert.deepEqual(m.findInFlightStream('tank/a')?.sendFlags, ['-w', '-c', '-L', '-e']);
      await oneVolume(m, store, raw);
      assert.throws(() => m.completeStream(raw, { plaintextSize: 8, storedSize: 60, sendFlags: ['-c'] }), code('BAD_INPUT'), 'other flags than begun with are refused');
      assert.deepEqual(m.completeStream(raw, { plaintextSize: 8, storedSize: 60, sendFlags: ['-w', '-c', '-L', '-e'] }).sendFlags, ['-w', '-c', '-L', '-e']);

      // Begun by a zbk that did not record flags (none given): null until completion says what the stream was sent with.
      const legacy = 'b2'.repeat(16);
      m.beginStream({ streamId: legacy, dataset: 'tank/b', from: null, to: snap('tank/b@1', 21n, 100n), volumeSize: 16, partSize: 8 });
      assert.equal(m.stream(legacy)?.sendFlags, null);
      await oneVolume(m, store, legacy);
      assert.deepEqual(m.completeStream(legacy, { plaintextSize: 8, storedSize: 60, sendFlags: [] }).sendFlags, []);

      const none = 'c3'.repeat(16);
      m.beginStream({ streamId: none, dataset: 'tank/c', from: null, to: snap('tank/c@1', 31n, 100n), volumeSize: 16, partSize: 8, sendFlags: null });
      await oneVolume(m, store, none);
      assert.equal(m.completeStream(none, { plaintextSize: 8, storedSize: 60 }).sendFlags, null, 'unknown stays unknown');
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
  });

  it('refuses a flag list that is not zfs send options', () => {
    const { m } = setup();
    try {
      for (const bad of [['w'], ['-w -c'], [''], ['-c', 'tank/a@1']]) {
        assert.throws(() => m.beginStream({ streamId: 'd4'.repeat(16), dataset: 'tank/a', from: null, to: A, volumeSize: 16, partSize: 8, sendFlags: bad }), code('BAD_INPUT'), JSON.stringify(bad));
      }
      assert.equal(m.findInFlightStream('tank/a'), null, 'nothing was begun');
    } finally {
      m.close();
    }
  });
});
