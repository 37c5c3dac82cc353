/**
 * A store that refuses every call. `downloadVolume` over it verifies a staged
 * file without any network access: it either completes (the file is whole
 * and authentic) or asks for a ranged GET, which throws
 * {@link NeedsFetchError}, leaving the file for the next download (truncated
 * at its first missing or bad part, or with a bad part followed by whole
 * ones, which that download fetches again on its own).
 */
import type { Readable } from 'node:stream';
import type { MultipartUploadInfo, ObjectInfo, ObjectStore, RestoreOutcome, UploadedPart, ListEntry } from '../../store/object-store.js';

/** The staged file is incomplete or was damaged: its tail must be fetched. */
export class NeedsFetchError extends Error {
  constructor(readonly key: string) {
    super(`staged copy of ${key} is incomplete`);
  }
}

export class OfflineStore implements ObjectStore {
  readonly url = 'offline:';
  private refuse(key: string): never {
    throw new NeedsFetchError(key);
  }
  put(key: string): Promise<void> {
    return Promise.reject(new NeedsFetchError(key));
  }
  putConditional(key: string): Promise<string> {
    return Promise.reject(new NeedsFetchError(key));
  }
  get(key: string): Promise<Readable> {
    return Promise.reject(new NeedsFetchError(key));
  }
  getBytes(key: string): Promise<Uint8Array> {
    return Promise.reject(new NeedsFetchError(key));
  }
  head(key: string): Promise<ObjectInfo> {
    return Promise.reject(new NeedsFetchError(key));
  }
  list(prefix: string): AsyncIterable<ListEntry> {
    return this.refuse(prefix);
  }
  deleteMany(keys: readonly string[]): Promise<void> {
    return Promise.reject(new NeedsFetchError(keys[0] ?? ''));
  }
  createMultipartUpload(key: string): Promise<string> {
    return Promise.reject(new NeedsFetchError(key));
  }
  uploadPart(key: string): Promise<UploadedPart> {
    return Promise.reject(new NeedsFetchError(key));
  }
  listParts(key: string): Promise<UploadedPart[]> {
    return Promise.reject(new NeedsFetchError(key));
  }
  completeMultipartUpload(key: string): Promise<void> {
    return Promise.reject(new NeedsFetchError(key));
  }
  abortMultipartUpload(key: string): Promise<void> {
    return Promise.reject(new NeedsFetchError(key));
  }
  listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    return Promise.reject(new NeedsFetchError(prefix));
  }
  requestRestore(key: string): Promise<RestoreOutcome> {
    return Promise.reject(new NeedsFetchError(key));
  }
}
