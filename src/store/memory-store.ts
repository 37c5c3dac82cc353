/**
 * An in-memory `ObjectStore` for tests of everything above the store layer.
 * It follows the contract (and S3's rules) closely enough that code passing
 * against it behaves the same against S3: checksums are verified, complete
 * enforces part order/size, archive classes need a restore, restored copies
 * expire. Time comes from an injectable clock, so tests never sleep.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type {
  ByteRange,
  ListEntry,
  MultipartUploadInfo,
  ObjectInfo,
  ObjectStore,
  PutOptions,
  RestoreListEntry,
  RestoreOutcome,
  RestoreState,
  RestoreTier,
  UploadedPart,
  UploadPartOptions,
  PutCondition,
} from './object-store.js';
import { ArchivedError, NoSuchUploadError, NotFoundError, RestoreInProgressError, PreconditionFailedError } from './errors.js';
import {
  DEFAULT_MIN_PART_SIZE,
  checkCompleteParts,
  compareKeys,
  isArchiveClass,
  md5Hex,
  multipartEtag,
  normalizePutOptions,
  pacedChunks,
  resolveRange,
  restoreExpiry,
  type StoreMethod,
  validateKey,
  validatePartNumber,
  validatePrefix,
  validateRestoreDays,
  verifyChecksum,
  zeroCounts,
} from './internal.js';

export type { StoreMethod } from './internal.js';

export interface MemoryStoreOptions {
  /** Clock for LastModified, restore completion and expiry. Default: real time. */
  now?: () => Date;
  /**
   * When true (default), objects in GLACIER/DEEP_ARCHIVE cannot be read
   * until restored, as on S3. When false, every object is readable.
   */
  archive?: boolean;
  /** Clock time from `requestRestore` until the copy is readable. Default 12 h (Deep Archive, Standard tier). */
  restoreDelayMs?: number;
  /** Minimum size of every part but the last at complete. Default 5 MiB. */
  minPartSize?: number;
  /** Value of `url`. Default `memory://`. */
  url?: string;
}

interface RestoreRecord {
  readyAt: number;
  expiry: Date;
}

interface StoredObject {
  data: Buffer;
  storageClass: string;
  metadata: Record<string, string>;
  lastModified: Date;
  etag: string;
  restore?: RestoreRecord;
}

interface StoredPart extends UploadedPart {
  data: Buffer;
  checksumSha256: string;
}

interface Upload {
  key: string;
  uploadId: string;
  initiated: Date;
  storageClass: string;
  metadata: Record<string, string>;
  parts: Map<number, StoredPart>;
}

export class MemoryStore implements ObjectStore {
  readonly url: string;
  /** Calls per method (counted on entry, failed calls included). `reset` with `resetCounts()`. */
  readonly counts: Record<StoreMethod, number> = zeroCounts();
  readonly minPartSize: number;
  readonly restoreDelayMs: number;
  private readonly now: () => Date;
  private readonly archive: boolean;
  private readonly objects = new Map<string, StoredObject>();
  private readonly uploads = new Map<string, Upload>();

  constructor(options: MemoryStoreOptions = {}) {
    this.url = options.url ?? 'memory://';
    this.now = options.now ?? (() => new Date());
    this.archive = options.archive ?? true;
    this.restoreDelayMs = options.restoreDelayMs ?? 12 * 3_600_000;
    this.minPartSize = options.minPartSize ?? DEFAULT_MIN_PART_SIZE;
  }

  resetCounts(): void {
    for (const k of Object.keys(this.counts) as StoreMethod[]) this.counts[k] = 0;
  }

  /** Keys of all stored objects, sorted (test helper). */
  keys(): string[] {
    return [...this.objects.keys()].sort(compareKeys);
  }

  /** Total bytes of stored objects plus pending parts (test helper). */
  storedBytes(): number {
    let n = 0;
    for (const o of this.objects.values()) n += o.data.length;
    for (const u of this.uploads.values()) for (const p of u.parts.values()) n += p.data.length;
    return n;
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    this.counts.put++;
    validateKey(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    const data = Buffer.from(body); // copy: the caller may reuse its buffer
    this.objects.set(key, { data, storageClass, metadata, lastModified: this.now(), etag: md5Hex(data) });
  }

  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    this.counts.putConditional++;
    validateKey(key);
    const cur = this.objects.get(key);
    if ('ifNoneMatch' in condition ? cur !== undefined : cur?.etag !== condition.ifMatch) throw new PreconditionFailedError(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    const data = Buffer.from(body);
    const etag = md5Hex(data);
    this.objects.set(key, { data, storageClass, metadata, lastModified: this.now(), etag });
    return etag;
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    this.counts.get++;
    const data = this.readable(key);
    if (data.length === 0 && range === undefined) return Readable.from([]);
    const r = resolveRange(range, data.length);
    // A copy, so a later overwrite does not change a stream already handed out.
    return Readable.from([Buffer.from(data.subarray(r.start, r.end + 1))]);
  }

  async getBytes(key: string): Promise<Uint8Array> {
    this.counts.getBytes++;
    return new Uint8Array(this.readable(key));
  }

  async head(key: string): Promise<ObjectInfo> {
    this.counts.head++;
    validateKey(key);
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(key);
    return {
      key,
      size: o.data.length,
      storageClass: o.storageClass,
      lastModified: o.lastModified,
      etag: o.etag,
      metadata: { ...o.metadata },
      restore: this.restoreState(o),
    };
  }

  async *list(prefix: string): AsyncIterable<ListEntry> {
    this.counts.list++;
    validatePrefix(prefix);
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys);
    for (const key of keys) {
      const o = this.objects.get(key);
      if (!o) continue; // deleted while iterating
      yield { key, size: o.data.length, storageClass: o.storageClass, lastModified: o.lastModified };
    }
  }

  /** Exact: the state `head` would report, for every object under `prefix`. */
  async listRestoreStates(prefix: string): Promise<Map<string, RestoreListEntry>> {
    this.counts.listRestoreStates++;
    validatePrefix(prefix);
    const out = new Map<string, RestoreListEntry>();
    for (const key of [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort(compareKeys)) {
      const o = this.objects.get(key)!;
      out.set(key, { size: o.data.length, storageClass: o.storageClass, restore: this.restoreState(o) });
    }
    return out;
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.counts.deleteMany++;
    for (const k of keys) validateKey(k);
    for (const k of keys) this.objects.delete(k);
  }

  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    this.counts.createMultipartUpload++;
    validateKey(key);
    const { storageClass, metadata } = normalizePutOptions(options);
    const uploadId = randomBytes(24).toString('base64url');
    this.uploads.set(uploadId, { key, uploadId, initiated: this.now(), storageClass, metadata, parts: new Map() });
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, sentChecksum?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    this.counts.uploadPart++;
    this.upload(key, uploadId);
    validatePartNumber(partNumber);
    // Paced: the bytes "arrive" as the bandwidth limit lets them go.
    if (options?.pacer) for await (const piece of pacedChunks(body, options)) void piece;
    const u = this.upload(key, uploadId);
    const data = Buffer.from(body);
    const checksumSha256 = verifyChecksum(data, sentChecksum);
    const part: StoredPart = { partNumber, size: data.length, etag: md5Hex(data), checksumSha256, data };
    u.parts.set(partNumber, part);
    return publicPart(part);
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    this.counts.listParts++;
    const u = this.upload(key, uploadId);
    return [...u.parts.values()].sort((a, b) => a.partNumber - b.partNumber).map(publicPart);
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    this.counts.completeMultipartUpload++;
    const u = this.upload(key, uploadId);
    const chosen = checkCompleteParts(parts, u.parts, this.minPartSize);
    const data = Buffer.concat(chosen.map((p) => p.data));
    this.objects.set(key, {
      data,
      storageClass: u.storageClass,
      metadata: u.metadata,
      lastModified: this.now(),
      etag: multipartEtag(chosen.map((p) => p.etag)),
    });
    this.uploads.delete(uploadId);
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    this.counts.abortMultipartUpload++;
    validateKey(key);
    const u = this.uploads.get(uploadId);
    if (u && u.key === key) this.uploads.delete(uploadId);
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    this.counts.listMultipartUploads++;
    validatePrefix(prefix);
    return [...this.uploads.values()]
      .filter((u) => u.key.startsWith(prefix))
      .sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime())
      .map((u) => ({ key: u.key, uploadId: u.uploadId, initiated: u.initiated }));
  }

  async requestRestore(key: string, days: number, _tier: RestoreTier): Promise<RestoreOutcome> {
    this.counts.requestRestore++;
    validateKey(key);
    validateRestoreDays(days);
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(key);
    const state = this.restoreState(o);
    const now = this.now();
    switch (state.state) {
      case 'not-archived':
        return 'not-archived';
      case 'in-progress':
        return 'in-progress';
      case 'restored':
        // S3 answers 200 and moves the expiry to now + days.
        o.restore = { readyAt: o.restore!.readyAt, expiry: restoreExpiry(now, days) };
        return 'already-restored';
      case 'archived':
        o.restore = { readyAt: now.getTime() + this.restoreDelayMs, expiry: restoreExpiry(now, days) };
        return 'started';
    }
  }

  /** The object's bytes if readable now. */
  private readable(key: string): Buffer {
    validateKey(key);
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(key);
    const state = this.restoreState(o);
    if (state.state === 'archived') throw new ArchivedError(key, o.storageClass);
    if (state.state === 'in-progress') throw new RestoreInProgressError(key);
    return o.data;
  }

  /** Derive the restore state from the clock; an expired copy reverts to archived. */
  private restoreState(o: StoredObject): RestoreState {
    if (!this.archive || !isArchiveClass(o.storageClass)) return { state: 'not-archived' };
    if (!o.restore) return { state: 'archived' };
    const now = this.now().getTime();
    if (now < o.restore.readyAt) return { state: 'in-progress' };
    if (now >= o.restore.expiry.getTime()) {
      delete o.restore;
      return { state: 'archived' };
    }
    return { state: 'restored', expiry: o.restore.expiry };
  }

  /** @throws NoSuchUploadError for an unknown id or a key that does not match it (as S3 does). */
  private upload(key: string, uploadId: string): Upload {
    validateKey(key);
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw new NoSuchUploadError(key, uploadId);
    return u;
  }
}

function publicPart(p: StoredPart): UploadedPart {
  return { partNumber: p.partNumber, size: p.size, etag: p.etag, checksumSha256: p.checksumSha256 };
}
