/**
 * Upload side of the pipeline: a plaintext stream (`zfs send` stdout) →
 * sealed parts → volumes (multipart objects), checkpointed part by part so a
 * killed push resumes without re-uploading what the store already holds.
 * Talks only to an ObjectStore, a Keyring, the source and callbacks.
 */
import { createHash, type Hash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Readable } from 'node:stream';
import { sealedPartSize, ZbkKeyring } from '../crypto/keyring.js';
import type { Keyring, PartContext } from '../crypto/types.js';
import { IntegrityError } from '../errors.js';
import { VOLUME_META_HEADER, volumeKey, type VolumeRecord } from '../layout.js';
import { NoSuchUploadError, NotFoundError } from '../store/errors.js';
import type { ObjectInfo, ObjectStore, TransferPacer, UploadedPart } from '../store/object-store.js';
import { AbortError, ResumeMismatchError } from './errors.js';
import { readParts, type StreamPart } from './parts.js';
import { WorkerClient } from './worker-client.js';

/** S3's limit of parts per multipart upload. */
export const MAX_PARTS_PER_VOLUME = 10_000;

/**
 * Plaintext part buffers the reader rotates through: with two, `zfs send` is
 * read into one while the worker still hashes the other, instead of the
 * whole pipeline waiting for each part's hashes before reading on.
 */
const PLAINTEXT_BUFFERS = 2;

/** A part the store acknowledged, as the checkpoint persists it. */
export interface AcknowledgedPart {
  plaintextSize: number;
  /** hex SHA-256 of the part's plaintext. */
  plaintextSha256: string;
  sealedSize: number;
  /** ETag without quotes. */
  etag: string;
  /** base64 SHA-256 of the sealed bytes. */
  checksumSha256: string;
}

export interface PartAcknowledgement extends AcknowledgedPart {
  volumeIndex: number;
  /** 1-based multipart part number. */
  partNumber: number;
}

/** Durable progress callbacks. Each is awaited before the pipeline relies on it. */
export interface UploadCheckpoint {
  /** A multipart upload was created for a volume (persist the id before any part is sent). */
  volumeStarted(v: { volumeIndex: number; key: string; uploadId: string }): void | Promise<void>;
  /** A part is stored; the part counts as done only once this resolves. */
  partAcknowledged(p: PartAcknowledgement): void | Promise<void>;
  /** A volume is complete and its stored size verified. Not called again for volumes completed in `resume`. */
  volumeCompleted(v: VolumeRecord): void | Promise<void>;
}

/** What an earlier run of the same stream checkpointed for one volume. */
export interface ResumeVolume {
  key: string;
  uploadId: string | null;
  completed: VolumeRecord | null;
  /** By 1-based part number. */
  parts: Map<number, AcknowledgedPart>;
}

/** Everything an earlier run checkpointed, by volume index. */
export interface ResumeState {
  volumes: Map<number, ResumeVolume>;
}

export interface UploadProgress {
  /** Cumulative plaintext bytes done (uploaded or verified and skipped). */
  plaintextBytes: number;
  /** Cumulative sealed bytes of those parts. */
  storedBytes: number;
  volumeIndex: number;
  partNumber: number;
  /** True when the part was already stored by an earlier run and only verified. */
  skipped: boolean;
}

export interface UploadStreamOptions {
  store: ObjectStore;
  keyring: Keyring;
  /** Plaintext source; destroyed on failure (so `zfs send` dies), consumed to the end on success. */
  source: Readable;
  /** 16 random bytes naming the stream. */
  streamId: Uint8Array;
  /** Plaintext bytes per part (≥ the store's minimum part size, except in tests). */
  partSize: number;
  /**
   * Plaintext bytes per volume. Rounded DOWN to a multiple of `partSize`
   * (at least one part), so every volume but the last holds exactly
   * `floor(volumeSize / partSize)` full parts.
   */
  volumeSize: number;
  /** Parts in flight at once (≥ 1). */
  parallel: number;
  /**
   * Compute the plaintext SHA-256 digests (part and volume) on a worker
   * thread over shared memory, overlapping them with sealing and store I/O
   * on the main thread. Default: true when more than one CPU is available.
   * Results are identical either way. (The sealed part's checksum is the
   * store's: `uploadPart` computes it from the bytes it sends.)
   */
  hashInWorker?: boolean;
  storageClass: string;
  /** User metadata for CreateMultipartUpload of a volume (the sealed VolumeMetadata under 'zbk-meta'). */
  volumeMetadata(volumeIndex: number): Record<string, string>;
  /** Sealed length of a part of `plainLen` plaintext bytes (crypto's `sealedPartSize`). */
  sealedSize(plainLen: number): number;
  checkpoint: UploadCheckpoint;
  /** Checkpointed state of an interrupted run of the SAME stream id, partSize and volumeSize. */
  resume?: ResumeState;
  /**
   * A bandwidth limit on the sealed bytes sent: every part's body is handed
   * to the store in pieces as this pacer allows (one pacer shared by all
   * parts in flight, and by every stream of a run: src/pipeline/bandwidth.ts).
   * Absent: as fast as the store takes them.
   */
  pacer?: TransferPacer;
  signal?: AbortSignal;
  onProgress?(p: UploadProgress): void;
}

export interface UploadResult {
  /** Every volume of the stream, in order (uploaded, adopted or verified from `resume`). */
  volumes: VolumeRecord[];
  plaintextSize: number;
  storedSize: number;
  partsUploaded: number;
  partsSkipped: number;
  volumesSkipped: number;
}

type VolumeMode =
  /** Parts go to a live multipart upload. */
  | 'upload'
  /** Completed in `resume`: read and hash only, compare with the record. */
  | 'verify'
  /** Upload id gone but the object exists (crash between complete and checkpoint): verify and adopt. */
  | 'adopt';

interface VolumeState {
  index: number;
  key: string;
  mode: VolumeMode;
  uploadId: string | null;
  resume: ResumeVolume | undefined;
  /** Parts the store confirmed (listParts), usable for skipping. */
  serverParts: Map<number, UploadedPart>;
  /** Object info when adopting or verifying. */
  info: ObjectInfo | null;
  plaintextSize: number;
  sealedTotal: number;
  partCount: number;
  /** Final part list for complete, by part number − 1. */
  parts: (UploadedPart | undefined)[];
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/**
 * SHA-256 digests the pipeline needs: per-part plaintext (hex) and
 * per-volume plaintext (hex, running over the volume's parts in order). Each
 * promise resolves once `data` is no longer read, so the caller may then
 * overwrite the buffer.
 */
interface PartHasher {
  /** Hash of `data`, also appended to volume `volume`'s running hash. */
  plain(volume: number, data: Uint8Array): Promise<string>;
  /** Digest of everything `plain` fed to `volume` (then forgotten). */
  volumeDigest(volume: number): Promise<string>;
  /** Buffer for data this hasher reads without copying (shared memory for the worker). */
  allocate(size: number): Buffer;
  close(): Promise<void>;
}

/** Hashes synchronously on the calling thread. */
class InlineHasher implements PartHasher {
  private readonly volumes = new Map<number, Hash>();

  plain(volume: number, data: Uint8Array): Promise<string> {
    let h = this.volumes.get(volume);
    if (!h) this.volumes.set(volume, (h = createHash('sha256')));
    h.update(data);
    return Promise.resolve(createHash('sha256').update(data).digest('hex'));
  }

  volumeDigest(volume: number): Promise<string> {
    const h = this.volumes.get(volume) ?? createHash('sha256');
    this.volumes.delete(volume);
    return Promise.resolve(h.digest('hex'));
  }

  allocate(size: number): Buffer {
    return Buffer.allocUnsafeSlow(size);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The worker's program (CommonJS, evaluated): requests are answered in order. */
const HASH_WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const volumes = new Map();
parentPort.on('message', (m) => {
  let reply;
  try {
    const data = m.buffer ? new Uint8Array(m.buffer, m.offset, m.length) : null;
    if (m.op === 'plain') {
      let h = volumes.get(m.volume);
      if (!h) volumes.set(m.volume, (h = createHash('sha256')));
      h.update(data);
      reply = { id: m.id, value: createHash('sha256').update(data).digest('hex') };
    } else if (m.op === 'volume') {
      const h = volumes.get(m.volume) || createHash('sha256');
      volumes.delete(m.volume);
      reply = { id: m.id, value: h.digest('hex') };
    } else {
      reply = { id: m.id, error: 'unknown op ' + m.op };
    }
  } catch (e) {
    reply = { id: m.id, error: String((e && e.message) || e) };
  }
  parentPort.postMessage(reply);
});
`;

/**
 * Hashes on a worker thread. Data must live in a SharedArrayBuffer (from
 * `allocate`) so nothing is copied; other data is hashed inline.
 */
class WorkerHasher implements PartHasher {
  // Keeps node alive while a hash is pending (close() always runs when the upload settles).
  private readonly client = new WorkerClient(new Worker(HASH_WORKER_SOURCE, { eval: true }), 'hash worker');

  private async request(op: string, fields: { volume?: number; data?: Uint8Array }): Promise<string> {
    const d = fields.data;
    return (await this.client.request({ op, volume: fields.volume, buffer: d?.buffer, offset: d?.byteOffset, length: d?.byteLength })) as string;
  }

  plain(volume: number, data: Uint8Array): Promise<string> {
    // uploadStream reads every part into one buffer from `allocate`; anything else is a bug, not a slow path.
    if (!(data.buffer instanceof SharedArrayBuffer)) return Promise.reject(new Error('internal: part data is not in shared memory'));
    return this.request('plain', { volume, data });
  }

  volumeDigest(volume: number): Promise<string> {
    return this.request('volume', { volume });
  }

  allocate(size: number): Buffer {
    return Buffer.from(new SharedArrayBuffer(size));
  }

  async close(): Promise<void> {
    await this.client.terminate();
  }
}

/** S3's multipart ETag (md5 of the parts' binary md5s, "-N"); null when a part ETag is not an md5. */
function multipartEtagOf(etags: string[]): string | null {
  if (!etags.every((e) => /^[0-9a-f]{32}$/i.test(e))) return null;
  const md5 = createHash('md5');
  for (const e of etags) md5.update(Buffer.from(e, 'hex'));
  return `${md5.digest('hex')}-${etags.length}`;
}

/**
 * Upload one plaintext stream as sealed volumes.
 *
 * Layout: volume v holds plaintext bytes [v·P·S, (v+1)·P·S) where S =
 * `partSize` and P = floor(volumeSize / S); part n (1-based) of a volume is
 * sealed with PartContext { streamId, volumeIndex: v, partIndex: n − 1,
 * final: n is the volume's last part }. An empty stream yields one volume
 * with one empty part. Volume keys are `volumeKey(hex(streamId), v)`.
 *
 * Resume: with `resume`, a part is skipped (not uploaded) only when the
 * checkpoint acknowledged it, the store's listParts still shows it with the
 * same size and ETag, its plaintext SHA-256 and size equal the source's, and
 * its `final` flag is known to be the same; a part whose final flag cannot
 * be known (the highest acknowledged full part of a volume) is re-uploaded.
 * Completed volumes are re-read and their plaintext hash compared, never
 * re-uploaded. Any disagreement with the source — different bytes, an
 * earlier or later end, a changed part size — throws `ResumeMismatchError`
 * before anything stored is overwritten or completed.
 *
 * Durability: a part counts as done only after `checkpoint.partAcknowledged`
 * resolves; a volume is completed only after all its parts are done, and
 * `checkpoint.volumeCompleted` is called only after `head` confirms the
 * stored size equals the sum of sealed part sizes (else IntegrityError).
 *
 * Failure: on any error or abort, reading stops, the source is destroyed,
 * in-flight parts settle (no unhandled rejections), and the promise rejects
 * with the first error (`AbortError` for the signal). Uploads are left in
 * place for a later resume; the caller decides whether to abort them.
 *
 * Memory bound: ≈ (parallel + 2) × (partSize + sealed overhead) plus one
 * source chunk of look-ahead, independent of stream length: TWO plaintext
 * part buffers used in turn (part k is sealed before part k + 1 is read, and
 * its buffer is refilled only once its hashes are done, so reading overlaps
 * the worker's hashing), and `parallel` sealed buffers, one per upload slot,
 * each reused once its part settled. The sealed buffers are reused when the
 * keyring is a ZbkKeyring (`sealPartInto`); another Keyring's `sealPart`
 * allocates per part, so up to `parallel + 1` sealed parts may be live until
 * collected. With `hashInWorker`, the plaintext buffers are
 * SharedArrayBuffers the hashing worker reads in place (no copies); the
 * worker itself adds a fixed ≈ 15–20 MB of runtime. Parallelism is per
 * volume: in-flight parts drain before a volume completes. A `pacer`
 * (bandwidth limit) adds no buffer: the store sends views of the sealed
 * buffer as the pacer allows; the sealed buffer is reused only after the
 * part settled, as without one.
 *
 * Threads: sealing and store calls run on the calling thread; the two
 * plaintext SHA-256 passes (part, volume) run on one worker thread when
 * `hashInWorker`; the sealed part's checksum is computed once, by the store,
 * from the bytes it sends (the server verifies it). A part's plaintext buffer
 * is refilled only after its hashes are done, and a sealed buffer is reused
 * only after its upload task settled.
 */
export async function uploadStream(opts: UploadStreamOptions): Promise<UploadResult> {
  const { store, keyring, source, streamId, partSize, parallel, checkpoint, signal } = opts;
  if (!(streamId instanceof Uint8Array) || streamId.length !== 16) throw new TypeError('streamId must be 16 bytes');
  if (!Number.isSafeInteger(partSize) || partSize <= 0) throw new RangeError('partSize must be a positive integer');
  if (!Number.isSafeInteger(parallel) || parallel < 1) throw new RangeError('parallel must be a positive integer');
  const partsPerVolume = Math.floor(opts.volumeSize / partSize);
  if (!(partsPerVolume >= 1)) throw new RangeError('volumeSize must be at least partSize');
  if (partsPerVolume > MAX_PARTS_PER_VOLUME) throw new RangeError(`volumeSize / partSize exceeds ${MAX_PARTS_PER_VOLUME} parts`);
  const streamHex = hex(streamId);
  const resume = opts.resume?.volumes ?? new Map<number, ResumeVolume>();

  const result: UploadResult = { volumes: [], plaintextSize: 0, storedSize: 0, partsUploaded: 0, partsSkipped: 0, volumesSkipped: 0 };
  let doneBytes = 0;
  let doneStored = 0;
  const inflight = new Set<Promise<void>>();
  let failure: { error: unknown } | null = null;

  // Aborted on failure: a paced part in flight stops waiting for the bandwidth limit (it would send the rest at the limit first).
  const stopped = new AbortController();
  const fail = (error: unknown): void => {
    if (failure) return;
    failure = { error };
    // Stops a pending read at once and kills the producer (zfs send).
    source.destroy();
    stopped.abort(new AbortError('upload stopped', { cause: error }));
  };
  const onAbort = (): void => fail(new AbortError('upload aborted', { cause: signal?.reason }));

  const progress = (volumeIndex: number, partNumber: number, plain: number, stored: number, skipped: boolean): void => {
    doneBytes += plain;
    doneStored += stored;
    opts.onProgress?.({ plaintextBytes: doneBytes, storedBytes: doneStored, volumeIndex, partNumber, skipped });
  };

  const mismatch = (why: string): never => {
    throw new ResumeMismatchError(`the stream differs from the interrupted upload it would resume (${why}); start it afresh`);
  };

  const drain = async (): Promise<void> => {
    while (inflight.size > 0) await Promise.race(inflight);
  };

  const createUpload = async (index: number, key: string): Promise<string> => {
    // Every part but a volume's last holds partSize plaintext bytes: the local store places them by it.
    const uploadId = await store.createMultipartUpload(key, { storageClass: opts.storageClass, metadata: opts.volumeMetadata(index), partSize: sealedPartSize(partSize) });
    await checkpoint.volumeStarted({ volumeIndex: index, key, uploadId });
    return uploadId;
  };

  const openVolume = async (index: number): Promise<VolumeState> => {
    const key = volumeKey(streamHex, index);
    const r = resume.get(index);
    if (r && r.key !== key) mismatch(`volume ${index} was recorded under another key`);
    const v: VolumeState = {
      index,
      key,
      mode: 'upload',
      uploadId: null,
      resume: r,
      serverParts: new Map(),
      info: null,
      plaintextSize: 0,
      sealedTotal: 0,
      partCount: 0,
      parts: [],
    };
    if (r?.completed) {
      if (r.completed.key !== key || r.completed.index !== index) mismatch(`volume ${index} record names another object`);
      if (r.completed.partSize !== partSize) mismatch(`volume ${index} was written with part size ${r.completed.partSize}, not ${partSize}`);
      v.mode = 'verify';
      v.info = await headOrNull(store, key);
      if (!v.info || v.info.size !== r.completed.storedSize) {
        mismatch(`completed volume ${key} is ${v.info ? `${v.info.size} bytes in the store, not ${r.completed.storedSize}` : 'missing from the store'}`);
      }
      return v;
    }
    if (r?.uploadId) {
      try {
        for (const p of await store.listParts(key, r.uploadId)) v.serverParts.set(p.partNumber, p);
        v.uploadId = r.uploadId;
        return v;
      } catch (err) {
        if (!(err instanceof NoSuchUploadError)) throw err;
      }
      // The upload is gone: either it was completed just before a crash, or it was aborted/expired.
      // An object at the key without an ETag or without its sealed metadata (a local store's
      // torn write: the data renamed, its sidecar never written) is not known to be the
      // completed volume: upload the volume afresh, which replaces it.
      const info = await headOrNull(store, key, true);
      if (info) {
        v.mode = 'adopt';
        v.info = info;
        return v;
      }
    }
    v.uploadId = await createUpload(index, key);
    return v;
  };

  /** Whether the earlier run sealed part `n` of `v` as final: true/false, or null when unknowable. */
  const previousFinal = (v: VolumeState, n: number, prev: AcknowledgedPart): boolean | null => {
    if (n === partsPerVolume || prev.plaintextSize < partSize) return true;
    for (const pn of v.resume?.parts.keys() ?? []) if (pn > n) return false;
    for (const [vi, rv] of resume) if (vi > v.index && (rv.completed || rv.parts.size > 0)) return false;
    return null;
  };

  /** The source ends at (volumeIndex, partNumber): nothing the earlier run stored may lie beyond. */
  const checkSourceEnd = (volumeIndex: number, partNumber: number): void => {
    for (const [vi, rv] of resume) {
      const beyond =
        (vi > volumeIndex && (rv.completed !== null || rv.parts.size > 0)) ||
        (vi === volumeIndex && ([...rv.parts.keys()].some((pn) => pn > partNumber) || (rv.completed !== null && rv.completed.partCount > partNumber)));
      if (beyond) mismatch(`the source ends at volume ${volumeIndex} part ${partNumber}, but the earlier run stored data beyond it`);
    }
  };

  /**
   * Sealed-output buffers, one per upload slot, reused from part to part
   * (at most `parallel` exist). A buffer goes back to the pool only after its
   * part's task settled, so the store never sees bytes change under it.
   */
  const sealInto = keyring instanceof ZbkKeyring ? keyring : null;
  const freeSealed: Buffer[] = [];
  let sealedBuffers = 0;
  const takeSealedBuffer = (): Buffer => {
    const b = freeSealed.pop();
    if (b) return b;
    if (sealedBuffers >= parallel) throw new Error('internal: more sealed buffers in use than upload slots');
    sealedBuffers++;
    // allocUnsafeSlow: a dedicated allocation, never a slice of the shared pool.
    return Buffer.allocUnsafeSlow(opts.sealedSize(partSize));
  };

  const seal = (ctx: PartContext, data: Buffer): { sealed: Uint8Array; slot: Buffer | null } => {
    if (!sealInto) return { sealed: keyring.sealPart(ctx, data), slot: null };
    const slot = takeSealedBuffer();
    try {
      return { sealed: sealInto.sealPartInto(ctx, data, slot), slot };
    } catch (err) {
      freeSealed.push(slot);
      throw err;
    }
  };

  const dispatch = async (v: VolumeState, n: number, data: Buffer, plainSha: Promise<string>, final: boolean, sealedLen: number): Promise<void> => {
    while (inflight.size >= parallel && !failure) await Promise.race(inflight);
    if (failure) return;
    // `data` may be the reader's reused buffer: it is consumed here, synchronously, before the next read.
    const { sealed, slot } = seal({ streamId, volumeIndex: v.index, partIndex: n - 1, final }, data);
    if (sealed.length !== sealedLen) {
      if (slot) freeSealed.push(slot);
      throw new Error(`sealedSize(${data.length}) = ${sealedLen} but the keyring sealed ${sealed.length} bytes`);
    }
    // The store computes the sealed part's checksum from the bytes it sends
    // (one pass; the server verifies it). The slot is not reused before the task settles.
    const uploadId = v.uploadId!;
    const plainLen = data.length;
    const task = (async () => {
      const sha = await plainSha;
      const up = opts.pacer ? await store.uploadPart(v.key, uploadId, n, sealed, undefined, { pacer: opts.pacer, signal: stopped.signal }) : await store.uploadPart(v.key, uploadId, n, sealed);
      if (up.size !== sealed.length) throw new IntegrityError(`store acknowledged ${up.size} bytes for part ${n} of ${v.key}, sent ${sealed.length}`);
      const checksum = up.checksumSha256;
      if (checksum === undefined) throw new IntegrityError(`store acknowledged part ${n} of ${v.key} without the checksum it verified`);
      await checkpoint.partAcknowledged({
        volumeIndex: v.index,
        partNumber: n,
        plaintextSize: plainLen,
        plaintextSha256: sha,
        sealedSize: sealed.length,
        etag: up.etag,
        checksumSha256: checksum,
      });
      v.parts[n - 1] = up;
      result.partsUploaded++;
      progress(v.index, n, plainLen, sealed.length, false);
    })();
    const settled: Promise<void> = task.then(
      () => undefined,
      (err: unknown) => fail(err),
    );
    inflight.add(settled);
    void settled.finally(() => {
      // Settled: the store is done with the bytes (acknowledged or failed), so the slot may be refilled.
      if (slot) freeSealed.push(slot);
      inflight.delete(settled);
    });
  };

  const finishVolume = async (v: VolumeState): Promise<void> => {
    const record: VolumeRecord = {
      index: v.index,
      key: v.key,
      plaintextSize: v.plaintextSize,
      plaintextSha256: await hasher.volumeDigest(v.index),
      storedSize: v.sealedTotal,
      partCount: v.partCount,
      partSize,
    };
    if (v.mode === 'verify') {
      const c = v.resume!.completed!;
      if (c.plaintextSize !== record.plaintextSize || c.partCount !== record.partCount || c.plaintextSha256 !== record.plaintextSha256) {
        mismatch(`completed volume ${v.index} holds other data than the source`);
      }
      if (c.storedSize !== record.storedSize) mismatch(`completed volume ${v.index} has another sealed size`);
      result.volumesSkipped++;
      result.volumes.push(c);
      return;
    }
    if (v.mode === 'adopt') {
      const acked = v.resume!.parts;
      if (acked.size !== v.partCount) mismatch(`volume ${v.index}: the stored object has other parts than the source`);
      const etags: string[] = [];
      for (let n = 1; n <= v.partCount; n++) etags.push(acked.get(n)!.etag);
      const expected = multipartEtagOf(etags);
      const info = v.info!;
      if (info.size !== v.sealedTotal || (expected !== null && info.etag !== undefined && info.etag !== expected)) {
        mismatch(`volume ${v.index}: the stored object is not the one the earlier run completed`);
      }
      if (info.etag) record.etag = info.etag;
      await checkpoint.volumeCompleted(record);
      result.volumesSkipped++;
      result.volumes.push(record);
      return;
    }
    const parts: UploadedPart[] = [];
    for (let i = 0; i < v.partCount; i++) {
      const p = v.parts[i];
      if (!p) throw new Error(`internal: part ${i + 1} of ${v.key} missing at complete`);
      parts.push(p);
    }
    await store.completeMultipartUpload(v.key, v.uploadId!, parts);
    const info = await store.head(v.key);
    if (info.size !== v.sealedTotal) {
      throw new IntegrityError(`stored object ${v.key} is ${info.size} bytes, expected ${v.sealedTotal}: the store did not keep what was uploaded`);
    }
    // What the store says the object is, recorded so `zbk verify` can tell it was replaced later.
    if (info.etag) record.etag = info.etag;
    await checkpoint.volumeCompleted(record);
    result.volumes.push(record);
  };

  let vol: VolumeState | null = null;
  let volumeIndex = 0;

  /** Handles one part; `hashed` settles once the worker no longer reads the part's buffer. */
  const handlePart = async (part: StreamPart): Promise<{ hashed: Promise<string> }> => {
    if (!vol) vol = await openVolume(volumeIndex);
    const v: VolumeState = vol;
    const n = v.partCount + 1;
    const final = part.last || n === partsPerVolume;
    if (part.last) checkSourceEnd(v.index, n);
    const data = part.data;
    // Hashing (part and volume plaintext) runs on the worker while this part is checked and sealed.
    const plainSha = hasher.plain(v.index, data);
    // Awaited by the read loop before this buffer is refilled; marked handled here so a
    // failure elsewhere does not leave it as an unhandled rejection.
    plainSha.catch(() => undefined);
    const sealedLen = opts.sealedSize(data.length);
    v.plaintextSize += data.length;
    v.sealedTotal += sealedLen;
    v.partCount = n;
    result.plaintextSize += data.length;

    if (v.mode === 'verify') {
      if (n > v.resume!.completed!.partCount) mismatch(`the source is longer than completed volume ${v.index}`);
      result.partsSkipped++;
      progress(v.index, n, data.length, sealedLen, true);
    } else if (v.mode === 'adopt') {
      const prev = v.resume!.parts.get(n);
      if (!prev || prev.plaintextSha256 !== (await plainSha) || prev.plaintextSize !== data.length || prev.sealedSize !== sealedLen) {
        mismatch(`part ${n} of volume ${v.index} differs from the stored object`);
      }
      result.partsSkipped++;
      progress(v.index, n, data.length, sealedLen, true);
    } else {
      const prev = v.resume?.parts.get(n);
      const server = v.serverParts.get(n);
      let skip = false;
      if (prev && server && server.size === prev.sealedSize && server.etag === prev.etag) {
        if (prev.plaintextSha256 !== (await plainSha) || prev.plaintextSize !== data.length || prev.sealedSize !== sealedLen) {
          mismatch(`part ${n} of volume ${v.index} differs`);
        }
        const was = previousFinal(v, n, prev);
        if (was !== null && was !== final) mismatch(`part ${n} of volume ${v.index} ends the volume in one run but not the other`);
        skip = was === final;
      }
      if (skip) {
        v.parts[n - 1] = server;
        result.partsSkipped++;
        progress(v.index, n, data.length, sealedLen, true);
      } else {
        await dispatch(v, n, data, plainSha, final, sealedLen);
      }
    }

    if (final) {
      await plainSha;
      await drain();
      if (failure) return { hashed: plainSha };
      vol = null;
      volumeIndex++;
      await finishVolume(v);
      result.storedSize += v.sealedTotal;
    }
    return { hashed: plainSha };
  };

  if (signal?.aborted) {
    source.destroy();
    throw new AbortError('upload aborted', { cause: signal.reason });
  }
  // Created only once nothing can throw before the `finally` that closes it.
  const hasher: PartHasher = (opts.hashInWorker ?? availableParallelism() > 1) ? new WorkerHasher() : new InlineHasher();
  signal?.addEventListener('abort', onAbort, { once: true });
  const gen = readParts(source, partSize, { reuseBuffer: true, buffers: PLAINTEXT_BUFFERS, allocate: (size) => hasher.allocate(size) });
  // Plaintext hashes of parts whose buffers the worker may still be reading, oldest first.
  const reading: Promise<string>[] = [];
  try {
    for (;;) {
      if (failure) break;
      // The next part overwrites the buffer of the part PLAINTEXT_BUFFERS back: its hash must be done.
      while (reading.length >= PLAINTEXT_BUFFERS) await reading.shift();
      const r = await gen.next();
      if (r.done) break;
      if (failure) break;
      reading.push((await handlePart(r.value)).hashed);
    }
    // Surfaces a hashing failure of the last parts in every mode.
    while (reading.length > 0) await reading.shift();
  } catch (err) {
    fail(err);
  } finally {
    await Promise.allSettled(reading);
    await drain();
    signal?.removeEventListener('abort', onAbort);
    await hasher.close();
  }
  if (failure) {
    await gen.return(undefined).catch(() => undefined);
    throw (failure as { error: unknown }).error;
  }
  if (vol) throw new Error('internal: stream ended inside a volume');
  return result;
}

/** `head`, or null when the object is missing (or, with `tornIsMissing`, has no ETag or no sealed metadata). */
async function headOrNull(store: ObjectStore, key: string, tornIsMissing = false): Promise<ObjectInfo | null> {
  let info: ObjectInfo;
  try {
    info = await store.head(key);
  } catch (err) {
    if (err instanceof NotFoundError) return null;
    throw err;
  }
  if (tornIsMissing && (info.etag === undefined || !info.metadata[VOLUME_META_HEADER])) return null;
  return info;
}
