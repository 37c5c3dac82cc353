/**
 * A store whose writes need the writer lease: every call that changes the
 * store first asserts the lease is still held (LeaseLostError otherwise), so
 * a writer that lost it stops before its next write without each use case
 * checking. Whole-object writes and deletions (stream records, mirrors,
 * consolidation's deletions: the commit points) also confirm it against the
 * store (one HEAD); part uploads check the local state only. Reads pass
 * through.
 */
import type { Readable } from 'node:stream';
import type {
  ByteRange,
  ListEntry,
  MultipartUploadInfo,
  ObjectInfo,
  ObjectStore,
  PutCondition,
  PutOptions,
  RestoreListEntry,
  RestoreOutcome,
  RestoreTier,
  UploadedPart,
  UploadPartOptions,
} from '../../store/object-store.js';
import type { IdentityProvider } from '../../store/object-store.js';

export class LeaseGuardedStore implements ObjectStore, Partial<IdentityProvider> {
  constructor(
    private readonly inner: ObjectStore & Partial<IdentityProvider>,
    private readonly assertHeld: () => void,
    private readonly confirm: () => Promise<void> = async () => assertHeld(),
  ) {}

  get url(): string {
    return this.inner.url;
  }

  get callerIdentity(): IdentityProvider['callerIdentity'] | undefined {
    return this.inner.callerIdentity?.bind(this.inner);
  }

  /** A read: passes through (absent when the inner store has none). */
  get listRestoreStates(): ((prefix: string) => Promise<Map<string, RestoreListEntry>>) | undefined {
    return this.inner.listRestoreStates?.bind(this.inner);
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.confirm();
    return this.inner.put(key, body, options);
  }
  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    await this.confirm();
    return this.inner.putConditional(key, body, condition, options);
  }
  get(key: string, range?: ByteRange): Promise<Readable> {
    return this.inner.get(key, range);
  }
  getBytes(key: string): Promise<Uint8Array> {
    return this.inner.getBytes(key);
  }
  head(key: string): Promise<ObjectInfo> {
    return this.inner.head(key);
  }
  list(prefix: string): AsyncIterable<ListEntry> {
    return this.inner.list(prefix);
  }
  async deleteMany(keys: readonly string[]): Promise<void> {
    await this.confirm();
    return this.inner.deleteMany(keys);
  }
  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    this.assertHeld();
    return this.inner.createMultipartUpload(key, options);
  }
  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, checksumSha256?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    this.assertHeld();
    return this.inner.uploadPart(key, uploadId, partNumber, body, checksumSha256, options);
  }
  listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    return this.inner.listParts(key, uploadId);
  }
  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    this.assertHeld();
    return this.inner.completeMultipartUpload(key, uploadId, parts);
  }
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    this.assertHeld();
    return this.inner.abortMultipartUpload(key, uploadId);
  }
  listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    return this.inner.listMultipartUploads(prefix);
  }
  requestRestore(key: string, days: number, tier: RestoreTier): Promise<RestoreOutcome> {
    return this.inner.requestRestore(key, days, tier);
  }
}
