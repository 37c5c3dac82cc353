/**
 * The orphan-upload check (src/services/orphans.ts) over a real manifest and
 * the in-memory store: which unfinished multipart uploads are protected as
 * in flight, and which are aborted.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { volumeKey } from '../../src/layout.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { abortOrphanUploads, findOrphanUploads } from '../../src/services/orphans.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { snap, tempDir } from '../manifest/helpers.js';

const tmp = tempDir();
after(() => tmp.cleanup());
let n = 0;
const now = new Date('2025-01-01T00:00:00Z');

function setup(): { m: Manifest; store: MemoryStore } {
  return { m: Manifest.open(join(tmp.dir, `m${n++}.db`)), store: new MemoryStore({ minPartSize: 1, now: () => now }) };
}

/** An uploading stream of `dataset` with volume 0 in flight; returns the stream id, key and upload id. */
async function streamInFlight(m: Manifest, store: MemoryStore, dataset: string, guid: bigint): Promise<{ streamId: string; key: string; uploadId: string }> {
  const streamId = guid.toString(16).padStart(32, '0');
  m.beginStream({ streamId, dataset, from: null, to: snap(`${dataset}@1`, guid, 100n), volumeSize: 16, partSize: 8, startedAt: now });
  const key = volumeKey(streamId, 0);
  const uploadId = await store.createMultipartUpload(key);
  m.recordVolumeStarted(streamId, 0, key, uploadId, 'DEEP_ARCHIVE');
  return { streamId, key, uploadId };
}

describe('orphan uploads', () => {
  it('protects the upload of an uploading stream, and aborts one of an abandoned stream the manifest still records', async () => {
    const { m, store } = setup();
    try {
      const live = await streamInFlight(m, store, 'tank/a', 11n);
      const gone = await streamInFlight(m, store, 'tank/b', 12n);
      // Abandoned while its upload id was still recorded (an older zbk's discard, or a failed
      // resume that had replaced a vanished upload): nothing will ever resume this upload.
      m.abandonStream(gone.streamId, 'resume mismatch');
      assert.deepEqual(
        (await findOrphanUploads(store, m, now)).map((u) => [u.key, u.owner, u.abortable]),
        [[gone.key, 'ours', true]],
      );
      assert.deepEqual(await abortOrphanUploads(store, m, now, 'test'), { aborted: 1, waiting: 0 });
      assert.deepEqual((await store.listMultipartUploads('data/')).map((u) => u.uploadId), [live.uploadId]);
      // The manifest forgets the aborted upload; the uploading stream's stays resumable.
      assert.deepEqual(m.inFlightUploads().map((u) => u.uploadId), [live.uploadId]);
      assert.deepEqual(m.volumes(gone.streamId).map((v) => [v.state, v.uploadId]), [['aborted', null]]);
      assert.deepEqual(await findOrphanUploads(store, m, now), []);
      assert.ok(m.integrityCheck().ok);
    } finally {
      m.close();
    }
  });
});
