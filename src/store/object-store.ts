/**
 * The storage contract every backend (S3, local directory, test doubles)
 * implements. Consumers depend on this interface only.
 *
 * General rules:
 * - Keys are relative to the store's prefix (the store adds it), use `/` as a
 *   separator and never start with `/`.
 * - Every method either succeeds or throws a `StoreError` subclass from
 *   `./errors.ts`; `TransientStoreError` is the only one a retry may fix.
 * - Methods marked idempotent may be repeated after a failure or a crash
 *   with the same arguments and reach the same final state.
 * - Sizes are byte counts as JS numbers (exact below 2^53 = 8 PiB).
 */
import type { Readable } from 'node:stream';

/** Storage class names as S3 spells them. */
export type StorageClass = 'STANDARD' | 'STANDARD_IA' | 'GLACIER_IR' | 'GLACIER' | 'DEEP_ARCHIVE' | (string & {});

/** Archive classes: a GET needs a restore first. */
export const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

export type RestoreTier = 'Standard' | 'Bulk';

/**
 * Restore state of an object, as `x-amz-restore` reports it.
 * - `not-archived`: readable now (not in an archive class).
 * - `archived`: archive class, no restored copy, no restore running.
 * - `in-progress`: a restore was requested and is running.
 * - `restored`: a temporary copy is readable until `expiry`.
 */
export type RestoreState =
  | { state: 'not-archived' }
  | { state: 'archived' }
  | { state: 'in-progress' }
  | { state: 'restored'; expiry: Date };

export interface ObjectInfo {
  key: string;
  size: number;
  storageClass: StorageClass;
  lastModified: Date;
  /** ETag without quotes, when the backend has one. */
  etag?: string;
  /** User metadata (lower-case names, without the `x-amz-meta-` prefix). */
  metadata: Record<string, string>;
  restore: RestoreState;
}

/**
 * One object of `listRestoreStates`: what a listing tells of its restore
 * state, without a HEAD per object.
 */
export interface RestoreListEntry {
  size: number;
  storageClass: StorageClass;
  /**
   * What `head(key).restore` would report at the time of the listing, or
   * null when the listing cannot tell (the caller HEADs that object).
   */
  restore: RestoreState | null;
}

/** One entry of a listing. Listings do not carry user metadata: use `head`. */
export interface ListEntry {
  key: string;
  size: number;
  storageClass: StorageClass;
  lastModified: Date;
}

export interface PutOptions {
  /** Defaults to STANDARD. */
  storageClass?: StorageClass;
  /** User metadata; at most 2 KB in total (names + values), ASCII values, lower-case names. */
  metadata?: Record<string, string>;
}

/** Options of `createMultipartUpload`. */
export interface MultipartOptions extends PutOptions {
  /**
   * Stored bytes of every part but the last, when the caller cuts the object
   * into equal parts. A hint: a store may place parts by it (the local store
   * writes each at its offset in one file, so completing is a rename, not a
   * copy) and must accept parts of any other size all the same.
   */
  partSize?: number;
}

/** The condition of `putConditional`. */
export type PutCondition = { ifNoneMatch: '*' } | { ifMatch: string };

/** An acknowledged part of a multipart upload. */
export interface UploadedPart {
  /** 1-based, ≤ 10,000. */
  partNumber: number;
  size: number;
  /** ETag without quotes. */
  etag: string;
  /**
   * Base64 SHA-256 of the part's bytes as the server verified it. Always set
   * by `uploadPart`; `listParts` sets it when the server reports it.
   */
  checksumSha256?: string;
}

export interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** Inclusive byte range, as HTTP Range `bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * A bandwidth limit on bytes crossing to or from a store (the shared token
 * bucket of src/pipeline/bandwidth.ts): a paced transfer hands its bytes on
 * in pieces of at most `chunkSize`, each once `take` resolved for it.
 */
export interface TransferPacer {
  /** The largest piece to take at once now (it depends on the rate in force). */
  readonly chunkSize: number;
  /** Resolves when `bytes` more may pass; rejects with `signal.reason` once `signal` is aborted. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** How `uploadPart` sends its body. */
export interface UploadPartOptions {
  /** Pace the body's bytes as they leave (a bandwidth limit); absent: as fast as the store takes them. */
  pacer?: TransferPacer;
  /**
   * Stops a paced body: the part fails with `signal.reason` itself (not a
   * StoreError, so no retry repeats it).
   */
  signal?: AbortSignal;
}

export type RestoreOutcome =
  /** A restore started (S3: 202). */
  | 'started'
  /** The object already has a restored copy; its expiry was moved to now + days (S3: 200). */
  | 'already-restored'
  /** A restore is already running (S3: 409 RestoreAlreadyInProgress); nothing changed. */
  | 'in-progress'
  /** The object is not in an archive class: it is readable now; nothing to do. */
  | 'not-archived';

export interface ObjectStore {
  /** Human-readable location without credentials, e.g. `s3://bucket/prefix` or `file:///dir`. */
  readonly url: string;

  /**
   * Write a whole object (small objects: key file, manifest mirrors).
   * Atomic: readers see the old object or the new one, never a mix.
   * Idempotent. Overwrites an existing object.
   */
  put(key: string, body: Uint8Array, options?: PutOptions): Promise<void>;

  /**
   * Write a small object only if `condition` holds when it is stored:
   * `{ ifNoneMatch: '*' }` — no object exists at the key; `{ ifMatch }` — the
   * object's current ETag is that one. Otherwise throws
   * PreconditionFailedError and changes nothing (also for `ifMatch` on a
   * missing object). Atomic against other conditional writes of the key.
   * Returns the stored object's ETag. Not idempotent: a repeat after a lost
   * reply fails its own condition, so callers tell success by reading back
   * what they wrote (e.g. a random id inside). Used for the writer lease.
   */
  putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string>;

  /**
   * Read an object (or an inclusive byte range of it) as a stream.
   * Throws NotFoundError, ArchivedError (archive class, not restored) or
   * RestoreInProgressError. The stream errors with a StoreError if the
   * transfer fails midway.
   */
  get(key: string, range?: ByteRange): Promise<Readable>;

  /** Read a whole small object into memory. Same errors as `get`. */
  getBytes(key: string): Promise<Uint8Array>;

  /** Size, class, metadata and restore state. Works on archived objects. Throws NotFoundError. */
  head(key: string): Promise<ObjectInfo>;

  /** All objects whose key starts with `prefix`, in key order, across pages. */
  list(prefix: string): AsyncIterable<ListEntry>;

  /**
   * Optional. The restore state of every object whose key starts with
   * `prefix`, by key (relative to the store's prefix, as `list` gives them),
   * across pages: many objects' states for the price of a listing instead
   * of one HEAD each. Read-only; the map is complete for the prefix (a key
   * absent from it had no object when it was listed).
   *
   * An entry's `restore` is what `head(key).restore` says at the time of the
   * listing (a restored copy's `expiry` is the same instant), or null when
   * the listing cannot tell: callers HEAD exactly those objects. A store
   * without this method is polled with `head`, one object at a time.
   *
   * - S3: ListObjectsV2 with `OptionalObjectAttributes=RestoreStatus`, one
   *   request per 1,000 objects (LIST rate). An object with a RestoreStatus
   *   is `in-progress` (IsRestoreInProgress) or `restored` (RestoreExpiryDate);
   *   one in a class that is not archived is `not-archived`. S3 sends no
   *   RestoreStatus for an archived object without a restore, and an
   *   S3-compatible service that ignores the parameter sends none at all, so
   *   an archive-class object without one is `archived` only when the same
   *   call saw a RestoreStatus on some archive-class object (the endpoint
   *   honours the parameter), and null otherwise.
   * - Local directory: every object is `not-archived`; in memory: exact.
   */
  listRestoreStates?(prefix: string): Promise<Map<string, RestoreListEntry>>;

  /** Delete objects. Idempotent: deleting a missing key is not an error. */
  deleteMany(keys: readonly string[]): Promise<void>;

  /**
   * Start a multipart upload. Storage class and metadata are fixed here and
   * cannot change later. Returns the upload id (persist it to resume).
   */
  createMultipartUpload(key: string, options?: MultipartOptions): Promise<string>;

  /**
   * Upload one part. The part is protected by a SHA-256 checksum of `body`
   * end to end: when the caller passes `checksumSha256` (base64) it is sent
   * to the server, which rejects a mismatch (PermanentStoreError
   * 'BAD_DIGEST'); when omitted, the store computes it from `body` itself
   * before the bytes leave for the server (one hash pass instead of two
   * when the caller has no digest at hand). Either way the result carries
   * the checksum the server verified.
   * Idempotent: re-uploading a part number replaces it.
   * Throws NoSuchUploadError if the upload is gone.
   * With `options.pacer`, the body is sent in paced pieces (views of
   * `body`, no copy): every attempt of a retried part is paced anew.
   */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, checksumSha256?: string, options?: UploadPartOptions): Promise<UploadedPart>;

  /** Parts the server has acknowledged, ascending, across all pages. Throws NoSuchUploadError. */
  listParts(key: string, uploadId: string): Promise<UploadedPart[]>;

  /**
   * Assemble the object from `parts` (ascending part numbers, every part but
   * the last ≥ the server's minimum part size). After success the upload id
   * is gone. Throws NoSuchUploadError, or PermanentStoreError with code
   * 'INVALID_PART' / 'INVALID_PART_ORDER' / 'ENTITY_TOO_SMALL'.
   */
  completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void>;

  /** Discard an upload and its parts. Idempotent: an unknown upload id is not an error. */
  abortMultipartUpload(key: string, uploadId: string): Promise<void>;

  /** Unfinished multipart uploads whose key starts with `prefix`, across pages. */
  listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]>;

  /**
   * Ask for a temporary readable copy of an archived object for `days` days.
   * See `RestoreOutcome`. Throws NotFoundError.
   */
  requestRestore(key: string, days: number, tier: RestoreTier): Promise<RestoreOutcome>;
}

/** Who the credentials belong to (STS GetCallerIdentity); stores without identities return null. */
export interface IdentityProvider {
  callerIdentity(): Promise<{ account: string; arn: string; userId: string } | null>;
}
