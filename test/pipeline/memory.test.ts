import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { uploadStream } from '../../src/pipeline/upload.js';
import type { ObjectInfo, ObjectStore, UploadedPart } from '../../src/store/object-store.js';
import { RecordingCheckpoint, sealedSize, testKeyring } from './helpers.js';

const MiB = 1024 * 1024;

/** Accepts multipart uploads and throws the bytes away (keeps only sizes), so RSS reflects the pipeline alone. */
class DiscardStore implements ObjectStore {
  readonly url = 'discard://';
  private readonly uploads = new Map<string, Map<number, UploadedPart>>();
  private readonly sizes = new Map<string, number>();
  private next = 0;
  uploadedBytes = 0;

  async createMultipartUpload(): Promise<string> {
    const id = `u${this.next++}`;
    this.uploads.set(id, new Map());
    return id;
  }
  async uploadPart(_key: string, uploadId: string, partNumber: number, body: Uint8Array): Promise<UploadedPart> {
    // Slower than the source, as a real uplink is: an unbounded pipeline would pile parts up here.
    await new Promise((r) => setTimeout(r, 5));
    // A store returns the checksum it verified (the ObjectStore contract); computing it is the store's one hash pass.
    const p = { partNumber, size: body.length, etag: `e${partNumber}`, checksumSha256: createHash('sha256').update(body).digest('base64') };
    this.uploads.get(uploadId)!.set(partNumber, p);
    this.uploadedBytes += body.length;
    return p;
  }
  async listParts(_key: string, uploadId: string): Promise<UploadedPart[]> {
    return [...this.uploads.get(uploadId)!.values()];
  }
  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    this.sizes.set(key, parts.reduce((n, p) => n + p.size, 0));
    this.uploads.delete(uploadId);
  }
  async head(key: string): Promise<ObjectInfo> {
    const size = this.sizes.get(key);
    if (size === undefined) throw new Error(`no object ${key}`);
    return { key, size, storageClass: 'STANDARD', lastModified: new Date(), metadata: {}, restore: { state: 'not-archived' } };
  }
  put(): Promise<void> {
    throw new Error('not used');
  }
  putConditional(): Promise<string> {
    throw new Error('not used');
  }
  get(): Promise<Readable> {
    throw new Error('not used');
  }
  getBytes(): Promise<Uint8Array> {
    throw new Error('not used');
  }
  // eslint-disable-next-line require-yield
  async *list(): AsyncIterable<never> {
    throw new Error('not used');
  }
  deleteMany(): Promise<void> {
    throw new Error('not used');
  }
  abortMultipartUpload(): Promise<void> {
    throw new Error('not used');
  }
  listMultipartUploads(): Promise<never[]> {
    throw new Error('not used');
  }
  requestRestore(): Promise<never> {
    throw new Error('not used');
  }
}

/** `total` bytes in 128 KiB chunks, generated on demand (never held whole). */
function generated(total: number): Readable {
  let sent = 0;
  const chunk = randomBytes(128 * 1024);
  return new Readable({
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      this.push(Buffer.from(chunk.subarray(0, n)));
    },
  });
}

describe('uploadStream memory', () => {
  it('uploads 256 MiB with 8 MiB parts in memory bounded by parts in flight, not stream size', async (t) => {
    const keyring = await testKeyring();
    const store = new DiscardStore();
    const total = 256 * MiB;
    const partSize = 8 * MiB;
    const parallel = 4;
    const base = process.memoryUsage().rss;
    let peak = base;
    const res = await uploadStream({
      store,
      keyring,
      source: generated(total),
      streamId: randomBytes(16),
      partSize,
      volumeSize: total,
      parallel,
      storageClass: 'STANDARD',
      volumeMetadata: () => ({}),
      sealedSize,
      checkpoint: new RecordingCheckpoint(),
      onProgress: () => {
        peak = Math.max(peak, process.memoryUsage().rss);
      },
    });
    assert.equal(res.plaintextSize, total);
    assert.equal(res.volumes.length, 1);
    assert.equal(store.uploadedBytes, res.storedSize);
    const growth = peak - base;
    // Live data ≈ (parallel + 2) × partSize = 48 MiB; garbage awaiting GC roughly doubles
    // that (measured ≈ 135–150 MiB). A pipeline that ignored `parallel` reaches ≈ 340 MiB
    // here, and buffering the stream would need ≥ 256 MiB, so the bound stays below both.
    const bound = 224 * MiB;
    t.diagnostic(`RSS growth ${(growth / MiB).toFixed(1)} MiB`);
    assert.ok(growth < bound, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB)`);
  });
});
