import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp as copyTree, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { Keyring } from '../../src/crypto/types.js';
import { IntegrityError } from '../../src/errors.js';
import { volumeKey } from '../../src/layout.js';
import { openVolumesFromStore } from '../../src/pipeline/download.js';
import { AbortError, ResumeMismatchError } from '../../src/pipeline/errors.js';
import { uploadStream, type ResumeState, type UploadResult, type UploadStreamOptions } from '../../src/pipeline/upload.js';
import { FaultInjectingStore, SimulatedCrashError } from '../../src/store/fault-store.js';
import { LocalStore } from '../../src/store/local-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { ObjectStore, UploadedPart } from '../../src/store/object-store.js';
import { TransientStoreError } from '../../src/store/errors.js';
import { bytesOf, collect, RecordingCheckpoint, sealedSize, sourceOf, testKeyring } from './helpers.js';

const PS = 4096;
const PARTS_PER_VOLUME = 4;
// Deliberately not a multiple of PS: it must round down to 4 parts.
const VS = PARTS_PER_VOLUME * PS + 100;
const VOLUME_BYTES = PARTS_PER_VOLUME * PS;

let keyring: Keyring;
before(async () => {
  keyring = await testKeyring();
});

function newStore(): MemoryStore {
  return new MemoryStore({ minPartSize: PS, archive: false });
}

function upload(
  store: ObjectStore,
  data: Buffer,
  streamId: Uint8Array,
  checkpoint: RecordingCheckpoint,
  extra: Partial<UploadStreamOptions> = {},
): Promise<UploadResult> {
  return uploadStream({
    store,
    keyring,
    source: sourceOf(data),
    streamId,
    partSize: PS,
    volumeSize: VS,
    parallel: 3,
    storageClass: 'STANDARD',
    volumeMetadata: (i) => ({ 'zbk-meta': `test-volume-${i}` }),
    sealedSize,
    checkpoint,
    ...extra,
  });
}

async function readBack(store: ObjectStore, streamId: Uint8Array, res: UploadResult): Promise<Buffer> {
  return collect(openVolumesFromStore({ store, keyring, streamId, volumes: res.volumes, sealedSize }));
}

function partsOf(size: number): number {
  if (size === 0) return 1;
  return Math.ceil(size / PS);
}

describe('uploadStream round trip', () => {
  const sizes = [0, 1, PS - 1, PS, PS + 1, VOLUME_BYTES, VOLUME_BYTES + 1, 2 * VOLUME_BYTES + 3 * PS + 5];
  for (const size of sizes) {
    it(`${size} bytes`, async () => {
      const store = newStore();
      const data = bytesOf(size, size + 1);
      const streamId = randomBytes(16);
      const cp = new RecordingCheckpoint();
      const res = await upload(store, data, streamId, cp);

      const volumes = size === 0 ? 1 : Math.ceil(size / VOLUME_BYTES);
      assert.equal(res.volumes.length, volumes);
      assert.equal(res.plaintextSize, size);
      assert.equal(res.partsUploaded, partsOf(size));
      assert.equal(res.partsSkipped, 0);
      assert.equal(store.counts.uploadPart, partsOf(size));
      assert.deepEqual(cp.completed, res.volumes);
      const hex = Buffer.from(streamId).toString('hex');
      res.volumes.forEach((v, i) => {
        assert.equal(v.index, i);
        assert.equal(v.key, volumeKey(hex, i));
        assert.equal(v.partSize, PS);
        assert.ok(v.partCount <= PARTS_PER_VOLUME);
      });
      assert.equal(res.storedSize, res.volumes.reduce((n, v) => n + v.storedSize, 0));
      assert.equal(store.storedBytes(), res.storedSize, 'no pending parts are left behind');
      const info = await store.head(res.volumes[0]!.key);
      assert.equal(info.metadata['zbk-meta'], 'test-volume-0');
      assert.equal(info.storageClass, 'STANDARD');

      assert.deepEqual(await readBack(store, streamId, res), data);
    });
  }

  it('reports progress for every part, cumulatively', async () => {
    const store = newStore();
    const data = bytesOf(VOLUME_BYTES + 2 * PS, 5);
    const seen: number[] = [];
    let last = 0;
    const res = await upload(store, data, randomBytes(16), new RecordingCheckpoint(), {
      onProgress: (p) => {
        seen.push(p.partNumber);
        assert.ok(p.plaintextBytes > last);
        last = p.plaintextBytes;
      },
    });
    assert.equal(seen.length, res.partsUploaded);
    assert.equal(last, data.length);
  });

  it('detects a store that keeps fewer bytes than uploaded', async () => {
    const inner = newStore();
    const lying: ObjectStore = Object.create(inner) as ObjectStore;
    lying.head = async (key) => ({ ...(await inner.head(key)), size: 1 });
    await assert.rejects(upload(lying, bytesOf(3 * PS, 1), randomBytes(16), new RecordingCheckpoint()), IntegrityError);
  });
});

describe('uploadStream resume', () => {
  const data = bytesOf(2 * VOLUME_BYTES + 2 * PS + 77, 42);
  const totalParts = partsOf(data.length);

  async function interrupted(failAtPart: number): Promise<{ store: MemoryStore; streamId: Uint8Array; cp: RecordingCheckpoint }> {
    const store = newStore();
    const streamId = randomBytes(16);
    const cp = new RecordingCheckpoint(failAtPart);
    await assert.rejects(upload(store, data, streamId, cp), /checkpoint crash/);
    return { store, streamId, cp };
  }

  for (const k of [1, 3, 6, 8, 9]) {
    it(`uploads only the remaining parts after a crash at part ${k}`, async () => {
      const { store, streamId, cp } = await interrupted(k);
      const acked = [...cp.volumes.values()].reduce((n, v) => n + v.parts.size, 0);
      store.resetCounts();
      const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
      assert.equal(res.partsUploaded + res.partsSkipped, totalParts);
      assert.equal(store.counts.uploadPart, res.partsUploaded);
      // Every acknowledged part is reused, except at most the highest full part of the open volume,
      // whose `final` flag the earlier run cannot have recorded.
      assert.ok(res.partsSkipped >= acked - 1, `skipped ${res.partsSkipped} of ${acked} acknowledged`);
      assert.ok(res.partsSkipped <= acked);
      assert.deepEqual(await readBack(store, streamId, res), data);
      assert.equal(store.storedBytes(), res.storedSize);
    });
  }

  it('skips a completed volume without uploading, but reads and verifies it', async () => {
    // Crash in volume 1, after volume 0 completed.
    const { store, streamId, cp } = await interrupted(PARTS_PER_VOLUME + 2);
    assert.equal(cp.completed.length, 1);
    store.resetCounts();
    const src = sourceOf(data);
    const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState(), source: src });
    assert.equal(res.volumesSkipped, 1);
    assert.equal(store.counts.createMultipartUpload, 1, 'only the never-started volume 2 gets a new upload');
    assert.deepEqual(res.volumes[0], cp.completed[0]);
    assert.deepEqual(await readBack(store, streamId, res), data);

    // The same resume with volume 0's bytes changed is refused.
    const changed = Buffer.from(data);
    changed[5] ^= 1;
    const cp3 = cp.restart();
    await assert.rejects(upload(store, changed, streamId, cp3, { resume: cp3.resumeState() }), ResumeMismatchError);
  });

  it('refuses to resume with a different source, before completing anything', async () => {
    const { store, streamId, cp } = await interrupted(3);
    const other = bytesOf(data.length, 7);
    store.resetCounts();
    const err = await upload(store, other, streamId, cp.restart(), { resume: cp.resumeState() }).catch((e: unknown) => e);
    assert.ok(err instanceof ResumeMismatchError);
    assert.equal(err.code, 'RESUME_MISMATCH');
    assert.equal(store.counts.completeMultipartUpload, 0);
  });

  it('refuses a source that ends before data the earlier run stored', async () => {
    const { store, streamId, cp } = await interrupted(PARTS_PER_VOLUME + 3);
    const shorter = data.subarray(0, VOLUME_BYTES + PS);
    await assert.rejects(upload(store, shorter, streamId, cp.restart(), { resume: cp.resumeState() }), ResumeMismatchError);
    // Ends exactly where completed volume 0 ends: volume 0 verifies, but volume 1 had parts.
    const atBoundary = data.subarray(0, VOLUME_BYTES);
    await assert.rejects(upload(store, atBoundary, streamId, cp.restart(), { resume: cp.resumeState() }), ResumeMismatchError);
    const muchShorter = data.subarray(0, 2 * PS);
    await assert.rejects(upload(store, muchShorter, streamId, cp.restart(), { resume: cp.resumeState() }), ResumeMismatchError);
  });

  it('refuses a source longer than a completed last volume', async () => {
    const store = newStore();
    const streamId = randomBytes(16);
    const cp = new RecordingCheckpoint();
    const short = data.subarray(0, 2 * PS + 10);
    await upload(store, short, streamId, cp);
    await assert.rejects(upload(store, data, streamId, cp, { resume: cp.resumeState() }), ResumeMismatchError);
  });

  it('starts a new upload when the recorded one is gone', async () => {
    const { store, streamId, cp } = await interrupted(PARTS_PER_VOLUME + 3);
    const open = cp.volumes.get(1)!;
    await store.abortMultipartUpload(open.key, open.uploadId!);
    store.resetCounts();
    const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
    assert.equal(store.counts.createMultipartUpload, 2, 'volumes 1 and 2');
    assert.equal(res.partsUploaded, totalParts - PARTS_PER_VOLUME);
    assert.deepEqual(await readBack(store, streamId, res), data);
  });

  it('adopts a volume completed just before a crash (checkpoint not written)', async () => {
    const store = newStore();
    const streamId = randomBytes(16);
    const cp = new RecordingCheckpoint(Infinity, 2); // volume 1's completion is never recorded
    await assert.rejects(upload(store, data, streamId, cp), /crash at volume completion/);
    assert.equal(cp.completed.length, 1);
    store.resetCounts();
    const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
    assert.equal(res.volumesSkipped, 2);
    assert.equal(res.partsUploaded, totalParts - 2 * PARTS_PER_VOLUME);
    assert.equal(store.counts.createMultipartUpload, 1);
    assert.equal(cp2.completed.length, 3, 'the adopted volume is now recorded');
    assert.deepEqual(await readBack(store, streamId, res), data);
  });

  it('stops on abort, settles in-flight parts, destroys the source, and resumes', async () => {
    const store = newStore();
    const streamId = randomBytes(16);
    const cp = new RecordingCheckpoint();
    const ac = new AbortController();
    const src = sourceOf(data);
    let parts = 0;
    const err = await upload(store, data, streamId, cp, {
      source: src,
      signal: ac.signal,
      onProgress: () => {
        if (++parts === 5) ac.abort();
      },
    }).catch((e: unknown) => e);
    assert.ok(err instanceof AbortError, String(err));
    assert.equal(src.destroyed, true);
    const acked = [...cp.volumes.values()].reduce((n, v) => n + v.parts.size, 0);
    assert.ok(acked >= 5 && acked < totalParts);

    const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
    assert.ok(res.partsSkipped >= acked - 1);
    assert.deepEqual(await readBack(store, streamId, res), data);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const src = sourceOf(data);
    await assert.rejects(upload(newStore(), data, randomBytes(16), new RecordingCheckpoint(), { signal: AbortSignal.abort(), source: src }), AbortError);
    assert.equal(src.destroyed, true);
  });

  it('fails on a store error, then resumes through the fault', async () => {
    const inner = newStore();
    const store = new FaultInjectingStore(inner).script('uploadPart', null, null, null, null, null, 'transient');
    const streamId = randomBytes(16);
    const cp = new RecordingCheckpoint();
    const src = sourceOf(data);
    await assert.rejects(upload(store, data, streamId, cp, { source: src }), TransientStoreError);
    assert.equal(src.destroyed, true);
    const cp2 = cp.restart();
    const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
    assert.deepEqual(await readBack(inner, streamId, res), data);
  });

  it('a stored part that changed since it was acknowledged is re-uploaded, not trusted', async () => {
    const { store, streamId, cp } = await interrupted(3);
    const rs: ResumeState = cp.resumeState();
    const v0 = rs.volumes.get(0)!;
    const ack = v0.parts.get(1)!;
    v0.parts.set(1, { ...ack, etag: '0'.repeat(32) }); // the store no longer confirms it
    store.resetCounts();
    const res = await upload(store, data, streamId, cp.restart(), { resume: rs });
    assert.ok(res.partsUploaded >= totalParts - 1 - 1);
    assert.deepEqual(await readBack(store, streamId, res), data);
  });
});

describe('uploadStream resume on the local store', () => {
  const data = bytesOf(2 * VOLUME_BYTES + PS + 5, 9);

  async function withLocal(fn: (dir: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'zbk-upload-local-'));
    try {
      await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('a push killed inside the complete of a volume, after the data rename and before the sidecar rename, resumes', () =>
    withLocal(async (dir) => {
      const streamId = randomBytes(16);
      const key1 = volumeKey(Buffer.from(streamId).toString('hex'), 1);
      const path1 = join(dir, ...key1.split('/'));
      // Completes volume 1, then puts the directory back the way a kill between the data's and
      // the sidecar's renames leaves it (no sidecar yet, the upload with its record and its
      // part files still there) and dies.
      class KilledInComplete extends LocalStore {
        override async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
          if (key !== key1) return super.completeMultipartUpload(key, uploadId, parts);
          const uploadDir = join(dir, '.zbk-uploads', uploadId);
          const saved = `${uploadDir}.saved`;
          await copyTree(uploadDir, saved, { recursive: true });
          await super.completeMultipartUpload(key, uploadId, parts);
          await unlink(`${path1}.zbk-meta.json`);
          await rename(saved, uploadDir);
          throw new SimulatedCrashError('completeMultipartUpload');
        }
      }
      const killing = new KilledInComplete(dir, { minPartSize: PS });
      const cp = new RecordingCheckpoint();
      await assert.rejects(upload(killing, data, streamId, cp), SimulatedCrashError);
      assert.equal(cp.completed.length, 1);

      // Every later push of the stream must get through, not fail on the torn volume.
      const store = new LocalStore(dir, { minPartSize: PS });
      const cp2 = cp.restart();
      const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
      assert.equal(res.volumesSkipped, 1);
      assert.equal(res.volumes.length, 3);
      assert.deepEqual(await readBack(store, streamId, res), data);
      const cp3 = cp2.restart();
      const again = await upload(store, data, streamId, cp3, { resume: cp3.resumeState() });
      assert.equal(again.volumesSkipped, 3);
    }));

  it('a volume left torn (no sidecar) with its upload gone is uploaded afresh, not a permanent failure', () =>
    withLocal(async (dir) => {
      const streamId = randomBytes(16);
      const key1 = volumeKey(Buffer.from(streamId).toString('hex'), 1);
      const store = new LocalStore(dir, { minPartSize: PS });
      const cp = new RecordingCheckpoint(Infinity, 2); // volume 1 completes in the store, its checkpoint never lands
      await assert.rejects(upload(store, data, streamId, cp), /crash at volume completion/);
      // What the older complete left after a kill between its renames and a repeated complete.
      await unlink(join(dir, ...key1.split('/')) + '.zbk-meta.json');
      assert.deepEqual((await store.head(key1)).metadata, {}, 'a torn object: no ETag, no metadata');
      const cp2 = cp.restart();
      const res = await upload(store, data, streamId, cp2, { resume: cp2.resumeState() });
      assert.equal(res.volumesSkipped, 1);
      assert.equal(res.partsUploaded, PARTS_PER_VOLUME + 2, 'volumes 1 and 2 uploaded again');
      assert.deepEqual(await readBack(store, streamId, res), data);
      assert.equal((await store.head(key1)).size, res.volumes[1]!.storedSize);
    }));
});
