/**
 * `ObjectStore` on Amazon S3 (or any S3-compatible endpoint) with
 * @aws-sdk/client-s3. Every SDK error is translated into the typed errors of
 * `./errors.ts` here; no SDK type crosses this module's exported signatures.
 *
 * - Retries: the SDK makes at most `maxAttempts` (default 1) attempts;
 *   `RetryingStore` owns retries, so they are counted and reported once.
 * - Integrity: multipart uploads use the composite SHA256 checksum
 *   algorithm. Each UploadPart carries a ChecksumSHA256 (the caller's, or
 *   computed here from the body before sending), which S3 verifies (mismatch → PermanentStoreError 'BAD_DIGEST', nothing stored);
 *   CompleteMultipartUpload repeats each part's checksum.
 * - Credentials: the SDK's standard chain (env, profile, SSO, instance
 *   role) unless `options.credentials` is given. Error messages carry the
 *   operation, key, S3 error code and HTTP status only — never request
 *   details that could include credentials.
 */
import { PassThrough, Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetBucketLifecycleConfigurationCommand,
  GetBucketLocationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
  UploadPartCommand,
  type LifecycleRule,
  type UploadPartCommandOutput,
  type StorageClass as SdkStorageClass,
} from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { StoreConfig } from '../config/config.js';
import type {
  ByteRange,
  IdentityProvider,
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
import {
  AccessDeniedError,
  ArchivedError,
  NoSuchUploadError,
  NotFoundError,
  PermanentStoreError,
  RestoreInProgressError,
  StoreError,
  StoreUnreachableError,
  TransientStoreError,
  PreconditionFailedError,
} from './errors.js';
import { compareKeys, isArchiveClass, normalizePutOptions, pacedChunks, pacingStopped, sha256Base64, validateKey, validatePrefix } from './internal.js';
import { parseStoreUrl } from './store-url.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StoreOptions {
  /** Explicit credentials (tests); otherwise the standard AWS credential chain. */
  credentials?: S3Credentials;
  /** SDK attempts per request (default 1: RetryingStore retries). */
  maxAttempts?: number;
  /** Socket idle timeout per request, ms (default 120 000). */
  requestTimeoutMs?: number;
  /** Time to establish a connection, ms (default 30 000; interactive runs use less, see retry-mode.ts). */
  connectTimeoutMs?: number;
  /**
   * How the provider restores archived objects (its profile's restore semantics):
   * `tiered` (default, AWS): RestoreObject with Days and the Tier asked;
   * `days-only` (OVH Cold Archive, which refuses a Tier): Days, no Tier;
   * `none` (GCS Archive, hot S3 services): there is no restore step, so no
   * RestoreObject is sent — a HEAD checks the object exists and the answer is `not-archived`.
   */
  restoreMode?: S3RestoreMode;
}

export type S3RestoreMode = 'tiered' | 'days-only' | 'none';

/** Lifecycle rule id zbk wrote before rules were per prefix (one per bucket: a second repository replaced the first's). */
export const ABORT_RULE_ID = 'zbk-abort-incomplete-multipart-uploads';

/**
 * The id of zbk's rule aborting stale multipart uploads under `keyPrefix`:
 * one rule per repository prefix, so repositories sharing a bucket each keep
 * theirs (ids are at most 255 characters: the prefix goes in as a hash).
 */
export function abortRuleId(keyPrefix: string): string {
  return `${ABORT_RULE_ID}-${createHash('sha256').update(keyPrefix).digest('hex').slice(0, 16)}`;
}

const SILENT_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export class S3Store implements ObjectStore, IdentityProvider {
  readonly url: string;
  readonly bucket: string;
  /** '' or ends with '/'. */
  readonly keyPrefix: string;
  private readonly s3: S3Client;
  private readonly cfg: StoreConfig;
  private readonly options: S3StoreOptions;

  /** @throws ConfigError when `cfg.url` is not an s3:// URL. */
  constructor(cfg: StoreConfig, options: S3StoreOptions = {}) {
    const parsed = parseStoreUrl(cfg.url);
    if (parsed.kind !== 's3') throw new PermanentStoreError(`S3Store needs an s3:// URL, got ${cfg.url}`, 'INVALID_URL');
    this.bucket = parsed.bucket;
    this.keyPrefix = parsed.prefix;
    this.url = `s3://${this.bucket}/${this.keyPrefix}`.replace(/\/$/, '');
    this.cfg = cfg;
    this.options = options;
    const checksum = cfg.checksumCalculation === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
    this.s3 = new S3Client({
      region: cfg.region,
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      forcePathStyle: cfg.pathStyle,
      maxAttempts: options.maxAttempts ?? 1,
      requestChecksumCalculation: checksum,
      responseChecksumValidation: checksum,
      requestHandler: { requestTimeout: options.requestTimeoutMs ?? 120_000, connectionTimeout: options.connectTimeoutMs ?? 30_000 },
      // Silent: failures surface as typed errors. (Without a logger the SDK writes a console warning
      // for every failed streaming request, i.e. every failed or stopped paced part.)
      logger: SILENT_LOGGER,
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
  }

  /** Release sockets. The store must not be used afterwards. */
  destroy(): void {
    this.s3.destroy();
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    await this.putObject('put', key, body, options, {});
  }

  /** PutObject with If-None-Match / If-Match (S3 since 2024; S3-compatible stores vary: see docs/OPERATIONS.md). */
  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    try {
      return await this.putObject('putConditional', key, body, options, 'ifNoneMatch' in condition ? { IfNoneMatch: '*' } : { IfMatch: `"${condition.ifMatch}"` });
    } catch (err) {
      // If-Match on a missing key answers 404: for the caller, the object it read is not there.
      if (err instanceof NotFoundError && 'ifMatch' in condition) throw new PreconditionFailedError(key, { cause: err });
      throw err;
    }
  }

  /** One PutObject with the SHA-256 checksum, plus `extra` headers; returns the ETag. */
  private async putObject(op: string, key: string, body: Uint8Array, options: PutOptions | undefined, extra: { IfNoneMatch?: string; IfMatch?: string }): Promise<string> {
    const { storageClass, metadata } = normalizePutOptions(options);
    const out = await this.send(op, key, () =>
      this.s3.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          Body: body,
          StorageClass: storageClass as SdkStorageClass,
          Metadata: metadata,
          ChecksumSHA256: sha256Base64(body),
          ...extra,
        }),
      ),
    );
    return unquote(out.ETag ?? '');
  }

  /**
   * @throws NotFoundError, ArchivedError, RestoreInProgressError. The stream
   * errors with TransientStoreError when the transfer breaks midway.
   */
  async get(key: string, range?: ByteRange): Promise<Readable> {
    if (range && (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start)) {
      throw new PermanentStoreError(`invalid range ${range.start}-${range.end}`, 'INVALID_RANGE');
    }
    const out = await this.send('get', key, () =>
      this.s3.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      ),
    );
    const body = out.Body as Readable | undefined;
    const pass = new PassThrough();
    if (!body) {
      pass.end();
      return pass;
    }
    body.on('error', (err) => pass.destroy(toStoreError(err, 'get', key, undefined, this.location('get'))));
    pass.on('close', () => {
      if (!body.destroyed) body.destroy();
    });
    body.pipe(pass);
    return pass;
  }

  async getBytes(key: string): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    for await (const c of await this.get(key)) chunks.push(c as Buffer);
    return new Uint8Array(Buffer.concat(chunks));
  }

  async head(key: string): Promise<ObjectInfo> {
    const out = await this.send('head', key, () => this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) })));
    const storageClass = out.StorageClass ?? 'STANDARD';
    return {
      key,
      size: out.ContentLength ?? 0,
      storageClass,
      lastModified: out.LastModified ?? new Date(0),
      ...(out.ETag ? { etag: unquote(out.ETag) } : {}),
      metadata: lowerKeys(out.Metadata),
      restore: parseRestoreHeader(storageClass, out.Restore),
    };
  }

  async *list(prefix: string): AsyncIterable<ListEntry> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.send('list', prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        yield { key: o.Key.slice(this.keyPrefix.length), size: o.Size ?? 0, storageClass: o.StorageClass ?? 'STANDARD', lastModified: o.LastModified ?? new Date(0) };
      }
      // A truncated page without a token would end the listing early, and a partial listing
      // taken as whole makes objects look missing: refuse it.
      if (page.IsTruncated && !page.NextContinuationToken) throw new PermanentStoreError(`S3 list ${prefix}: the server said the listing goes on but gave no continuation token`, 'PROTOCOL');
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * ListObjectsV2 with `OptionalObjectAttributes=RestoreStatus` (the header
   * `x-amz-optional-object-attributes`), one request per 1,000 objects; see
   * the contract for what an archive-class object without a RestoreStatus
   * means (null unless the call saw the parameter honoured).
   */
  async listRestoreStates(prefix: string): Promise<Map<string, RestoreListEntry>> {
    validatePrefix(prefix);
    const out = new Map<string, RestoreListEntry>();
    /** Archive-class objects listed without a RestoreStatus: `archived`, or unknown. */
    const silent: RestoreListEntry[] = [];
    let honoured = false;
    let token: string | undefined;
    do {
      const page = await this.send('listRestoreStates', prefix, () =>
        this.s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            OptionalObjectAttributes: ['RestoreStatus'],
            ...(token ? { ContinuationToken: token } : {}),
          }),
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key) continue;
        const storageClass = o.StorageClass ?? 'STANDARD';
        const entry: RestoreListEntry = { size: o.Size ?? 0, storageClass, restore: null };
        if (!isArchiveClass(storageClass)) entry.restore = { state: 'not-archived' };
        else if (o.RestoreStatus) {
          honoured = true;
          entry.restore = restoreStateOfStatus(o.RestoreStatus);
        } else silent.push(entry);
        out.set(o.Key.slice(this.keyPrefix.length), entry);
      }
      if (page.IsTruncated && !page.NextContinuationToken) throw new PermanentStoreError(`S3 list ${prefix}: the server said the listing goes on but gave no continuation token`, 'PROTOCOL');
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    if (honoured) for (const e of silent) e.restore = { state: 'archived' };
    return out;
  }

  /** Batches of 1,000 (the DeleteObjects limit). Idempotent. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (const k of keys) validateKey(k);
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const out = await this.send('deleteMany', batch[0], () =>
        this.s3.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Quiet: true, Objects: batch.map((k) => ({ Key: this.full(k) })) },
          }),
        ),
      );
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const e = failed[0]!;
        const key = (e.Key ?? '').slice(this.keyPrefix.length);
        throw toStoreError({ name: e.Code ?? 'InternalError', $metadata: {} }, 'deleteMany', key);
      }
    }
  }

  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    const { storageClass, metadata } = normalizePutOptions(options);
    const out = await this.send('createMultipartUpload', key, () =>
      this.s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.full(key),
          StorageClass: storageClass as SdkStorageClass,
          Metadata: metadata,
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    );
    if (!out.UploadId) throw new PermanentStoreError(`S3 returned no upload id for ${key}`, 'PROTOCOL');
    return out.UploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, sentChecksum?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    // Computed once here (not per retry) so every attempt carries the same checksum.
    const checksumSha256 = sentChecksum ?? sha256Base64(body);
    // Paced: the SDK pipes the pieces as the bandwidth limit lets them go (views of `body`, no copy).
    // A pipe does not end the request when its source fails, so a failed body aborts the request.
    let paced: Readable | undefined;
    let bodyError: unknown = null;
    const abort = new AbortController();
    if (options?.pacer) {
      paced = Readable.from(pacedChunks(body, options), { objectMode: false });
      paced.on('error', (err) => {
        bodyError ??= err;
        abort.abort(err);
      });
    }
    let out: UploadPartCommandOutput;
    try {
      out = await this.send(
        'uploadPart',
        key,
        () =>
          this.s3.send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: this.full(key),
              UploadId: uploadId,
              PartNumber: partNumber,
              Body: paced ?? body,
              ContentLength: body.length,
              ChecksumAlgorithm: 'SHA256',
              ChecksumSHA256: checksumSha256,
            }),
            paced ? { abortSignal: abort.signal } : {},
          ),
        uploadId,
      );
    } catch (err) {
      // A stopped paced body is the caller's stop, not a store failure to retry.
      throw pacingStopped(options) ?? bodyError ?? err;
    } finally {
      paced?.destroy();
    }
    if (!out.ETag) throw new PermanentStoreError(`S3 returned no ETag for part ${partNumber} of ${key}`, 'PROTOCOL');
    return { partNumber, size: body.length, etag: unquote(out.ETag), checksumSha256: out.ChecksumSHA256 ?? checksumSha256 };
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    const parts: UploadedPart[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.send(
        'listParts',
        key,
        () =>
          this.s3.send(
            new ListPartsCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }),
          ),
        uploadId,
      );
      for (const p of page.Parts ?? []) {
        if (p.PartNumber === undefined || !p.ETag) continue;
        parts.push({ partNumber: p.PartNumber, size: p.Size ?? 0, etag: unquote(p.ETag), ...(p.ChecksumSHA256 ? { checksumSha256: p.ChecksumSHA256 } : {}) });
      }
      if (!page.IsTruncated || !page.NextPartNumberMarker || page.NextPartNumberMarker === marker) break;
      marker = page.NextPartNumberMarker;
    }
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    await this.send(
      'completeMultipartUpload',
      key,
      () =>
        this.s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: this.full(key),
            UploadId: uploadId,
            MultipartUpload: {
              Parts: parts.map((p) => ({
                PartNumber: p.partNumber,
                ETag: `"${unquote(p.etag)}"`,
                ...(p.checksumSha256 ? { ChecksumSHA256: p.checksumSha256 } : {}),
              })),
            },
          }),
        ),
      uploadId,
    );
  }

  /** Idempotent: NoSuchUpload is success. */
  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.send(
        'abortMultipartUpload',
        key,
        () => this.s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: uploadId })),
        uploadId,
      );
    } catch (err) {
      if (!(err instanceof NoSuchUploadError)) throw err;
    }
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    validatePrefix(prefix);
    const out: MultipartUploadInfo[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    for (;;) {
      const page = await this.send('listMultipartUploads', prefix, () =>
        this.s3.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(idMarker ? { UploadIdMarker: idMarker } : {}),
          }),
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        out.push({ key: u.Key.slice(this.keyPrefix.length), uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) });
      }
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      idMarker = page.NextUploadIdMarker;
      if (!keyMarker) throw new PermanentStoreError(`S3 list multipart uploads ${prefix}: the server said the listing goes on but gave no key marker`, 'PROTOCOL');
    }
    return out.sort((a, b) => compareKeys(a.key, b.key) || a.initiated.getTime() - b.initiated.getTime());
  }

  async requestRestore(key: string, days: number, tier: RestoreTier): Promise<RestoreOutcome> {
    const mode = this.options.restoreMode ?? 'tiered';
    if (mode === 'none') {
      await this.head(key);
      return 'not-archived';
    }
    try {
      const out = await this.send('requestRestore', key, () =>
        this.s3.send(
          new RestoreObjectCommand({
            Bucket: this.bucket,
            Key: this.full(key),
            RestoreRequest: mode === 'days-only' ? { Days: days } : { Days: days, GlacierJobParameters: { Tier: tier } },
          }),
        ),
      );
      return out.$metadata.httpStatusCode === 200 ? 'already-restored' : 'started';
    } catch (err) {
      if (err instanceof StoreError && err.code === 'RESTORE_ALREADY_IN_PROGRESS') return 'in-progress';
      if (err instanceof StoreError && err.code === 'INVALID_OBJECT_STATE') return 'not-archived';
      throw err;
    }
  }

  /**
   * STS GetCallerIdentity (same endpoint override as S3 when one is configured).
   * With an endpoint override the identity is best-effort (null when that
   * service has no STS, as MinIO, Ceph or B2 may not): S3 access itself is
   * checked by the caller anyway.
   */
  async callerIdentity(): Promise<{ account: string; arn: string; userId: string } | null> {
    const sts = new STSClient({
      region: this.cfg.region,
      ...(this.cfg.endpoint ? { endpoint: this.cfg.endpoint } : {}),
      maxAttempts: this.options.maxAttempts ?? 1,
      requestHandler: { connectionTimeout: this.options.connectTimeoutMs ?? 30_000 },
      ...(this.options.credentials ? { credentials: this.options.credentials } : {}),
    });
    try {
      const out = await this.send('callerIdentity', undefined, () => sts.send(new GetCallerIdentityCommand({})));
      return { account: out.Account ?? '', arn: out.Arn ?? '', userId: out.UserId ?? '' };
    } catch (err) {
      if (this.cfg.endpoint && !(err instanceof AccessDeniedError)) return null;
      throw err;
    } finally {
      sts.destroy();
    }
  }

  /** True when an enabled lifecycle rule aborts incomplete multipart uploads for this store's prefix. */
  async hasAbortIncompleteUploadsRule(): Promise<boolean> {
    const rules = await this.lifecycleRules();
    return rules.some((r) => {
      if (r.Status !== 'Enabled' || !r.AbortIncompleteMultipartUpload?.DaysAfterInitiation) return false;
      const f = r.Filter;
      const rulePrefix = f?.Prefix ?? f?.And?.Prefix ?? r.Prefix ?? '';
      const hasOtherFilters = Boolean(f?.Tag || f?.And?.Tags?.length || f?.ObjectSizeGreaterThan || f?.And?.ObjectSizeGreaterThan);
      return !hasOtherFilters && this.keyPrefix.startsWith(rulePrefix);
    });
  }

  /**
   * Add (or replace) this repository's rule aborting uploads `days` after
   * initiation, merged with the bucket's other rules: other repositories'
   * (other prefixes) and the owner's own stay as they are. A rule of an older
   * zbk (one id per bucket) is replaced only when it is for this prefix.
   */
  async putAbortIncompleteUploadsRule(days: number): Promise<void> {
    if (!Number.isInteger(days) || days < 1) throw new PermanentStoreError(`days must be a positive integer, got ${days}`, 'INVALID_ARGUMENT');
    const id = abortRuleId(this.keyPrefix);
    const prefixOf = (r: LifecycleRule): string => r.Filter?.Prefix ?? r.Filter?.And?.Prefix ?? r.Prefix ?? '';
    const rules = (await this.lifecycleRules()).filter((r) => r.ID !== id && !(r.ID === ABORT_RULE_ID && prefixOf(r) === this.keyPrefix));
    rules.push({
      ID: id,
      Status: 'Enabled',
      Filter: { Prefix: this.keyPrefix },
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: days },
    });
    await this.send('putBucketLifecycle', undefined, () =>
      this.s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket: this.bucket, LifecycleConfiguration: { Rules: rules } })),
    );
  }

  /** The bucket's region (GetBucketLocation; empty means us-east-1, 'EU' means eu-west-1). */
  async bucketRegion(): Promise<string> {
    const out = await this.send('bucketRegion', undefined, () => this.s3.send(new GetBucketLocationCommand({ Bucket: this.bucket })));
    const loc = out.LocationConstraint as string | undefined;
    if (!loc) return 'us-east-1';
    return loc === 'EU' ? 'eu-west-1' : loc;
  }

  private async lifecycleRules(): Promise<LifecycleRule[]> {
    try {
      const out = await this.send('getBucketLifecycle', undefined, () => this.s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket: this.bucket })));
      return out.Rules ?? [];
    } catch (err) {
      if (err instanceof StoreError && err.code === 'NO_LIFECYCLE') return [];
      throw err;
    }
  }

  private full(key: string): string {
    validateKey(key);
    return this.keyPrefix + key;
  }

  /**
   * Run one SDK call and translate its failure. A GET refused with
   * InvalidObjectState becomes ArchivedError or RestoreInProgressError
   * (the error alone cannot tell them apart; a HEAD can).
   */
  private async send<T>(op: string, key: string | undefined, call: () => Promise<T>, uploadId?: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      const mapped = toStoreError(err, op, key ?? '', uploadId, this.location(op));
      if (op === 'get' && key !== undefined && mapped.code === 'INVALID_OBJECT_STATE') {
        const info = await this.head(key);
        if (info.restore.state === 'in-progress') throw new RestoreInProgressError(key);
        throw new ArchivedError(key, info.storageClass);
      }
      throw mapped;
    }
  }

  /** Where the store is, for "cannot reach" messages: the endpoint (see `safeEndpoint`), else the bucket and region on AWS. */
  private location(op: string): string {
    if (this.cfg.endpoint) return `the store at ${safeEndpoint(this.cfg.endpoint)}`;
    if (op === 'callerIdentity') return `AWS STS in region ${this.cfg.region}`;
    return `S3 bucket ${this.bucket} in region ${this.cfg.region}`;
  }
}

/** An endpoint URL for messages: scheme, host, port and path only (no user:password, query or fragment). */
export function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'the configured [store] endpoint';
  }
}

/** Parse `x-amz-restore` (HeadObject's Restore) into a RestoreState. */
export function parseRestoreHeader(storageClass: string, header: string | undefined): RestoreState {
  if (!isArchiveClass(storageClass)) return { state: 'not-archived' };
  if (!header) return { state: 'archived' };
  if (/ongoing-request\s*=\s*"true"/i.test(header)) return { state: 'in-progress' };
  const m = /expiry-date\s*=\s*"([^"]+)"/i.exec(header);
  if (m) {
    const expiry = new Date(m[1]!);
    if (!Number.isNaN(expiry.getTime())) return { state: 'restored', expiry };
  }
  return { state: 'archived' };
}

/**
 * A listing's RestoreStatus (of an archive-class object) as a RestoreState:
 * running, or a copy until its expiry. A status that says neither (no
 * expiry on a finished restore) tells nothing: null, the caller HEADs.
 */
export function restoreStateOfStatus(status: { IsRestoreInProgress?: boolean; RestoreExpiryDate?: Date }): RestoreState | null {
  if (status.IsRestoreInProgress) return { state: 'in-progress' };
  const expiry = status.RestoreExpiryDate;
  if (expiry instanceof Date && !Number.isNaN(expiry.getTime())) return { state: 'restored', expiry };
  return null;
}

function unquote(etag: string): string {
  return etag.replace(/"/g, '');
}

function lowerKeys(m: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k.toLowerCase()] = v;
  return out;
}

const TRANSIENT_CODES = new Set([
  'SlowDown',
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'TimeoutError',
  'NetworkingError',
  'EC2ThrottledException',
]);
const TRANSIENT_ERRNO = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'ENOTFOUND', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);
const ACCESS_CODES = new Set(['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AllAccessDisabled', 'AccountProblem', 'CredentialsProviderError', 'InvalidClientTokenId', 'UnrecognizedClientException']);
const PERMANENT_CODES: Record<string, string> = {
  BadDigest: 'BAD_DIGEST',
  XAmzContentChecksumMismatch: 'BAD_DIGEST',
  InvalidDigest: 'BAD_DIGEST',
  InvalidPart: 'INVALID_PART',
  InvalidPartOrder: 'INVALID_PART_ORDER',
  EntityTooSmall: 'ENTITY_TOO_SMALL',
  EntityTooLarge: 'ENTITY_TOO_LARGE',
  InvalidRange: 'INVALID_RANGE',
  InvalidObjectState: 'INVALID_OBJECT_STATE',
  RestoreAlreadyInProgress: 'RESTORE_ALREADY_IN_PROGRESS',
  NoSuchLifecycleConfiguration: 'NO_LIFECYCLE',
  MalformedXML: 'MALFORMED_XML',
  InvalidArgument: 'INVALID_ARGUMENT',
  InvalidRequest: 'INVALID_REQUEST',
  InvalidStorageClass: 'INVALID_STORAGE_CLASS',
  MetadataTooLarge: 'INVALID_METADATA',
  PermanentRedirect: 'WRONG_REGION',
  AuthorizationHeaderMalformed: 'WRONG_REGION',
  // S3-compatible services answer what they do not implement with 501: asking again never helps.
  NotImplemented: 'NOT_IMPLEMENTED',
};

interface ErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  syscall?: unknown;
  message?: unknown;
  errors?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** No connection at all: transient, but a store that never answered gets a short budget interactively. */
const UNREACHABLE_ERRNO: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'DNS lookup failed',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
};
/** TLS handshake and certificate failures: a retry does not fix a certificate. */
const TLS_ERRNO = /^(CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_(VERIFY|GET)_|ERR_TLS_|ERR_SSL_|EPROTO$|HOSTNAME_MISMATCH$)/;

/** The errno of a connection failure (Node's happy-eyeballs AggregateError carries it on its first error). */
function errnoOf(e: ErrorShape): string {
  if (typeof e.code === 'string') return e.code;
  const first: unknown = Array.isArray(e.errors) ? e.errors[0] : undefined;
  const code = typeof first === 'object' && first !== null ? (first as ErrorShape).code : undefined;
  return typeof code === 'string' ? code : '';
}

/**
 * A failure to connect (before any HTTP answer): the errno and a few words,
 * or null. Connect timeouts: Node's (ETIMEDOUT from connect) and the SDK's
 * connectionTimeout (a TimeoutError without errno).
 */
function connectionFailure(e: ErrorShape, errno: string, message: string): { errno: string; what: string; tls: boolean } | null {
  const gloss = UNREACHABLE_ERRNO[errno];
  if (gloss) return { errno, what: gloss, tls: false };
  if (errno === 'ETIMEDOUT' && e.syscall === 'connect') return { errno, what: 'no connection within the connect timeout', tls: false };
  if (/did not establish a connection|without establishing a connection/i.test(message)) return { errno: 'ETIMEDOUT', what: 'no connection within the connect timeout', tls: false };
  if (TLS_ERRNO.test(errno)) return { errno, what: 'TLS handshake or certificate check failed', tls: true };
  return null;
}

/**
 * Translate an SDK or network error into a StoreError. Exported for tests.
 * The message names the operation, key, code and status only; a failure to
 * connect says `cannot reach <where>: <errno> (...)` (StoreUnreachableError,
 * or PermanentStoreError 'TLS'), `where` naming the endpoint or bucket.
 */
export function toStoreError(err: unknown, op: string, key: string, uploadId?: string, where = 'the store'): StoreError {
  if (err instanceof StoreError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as ErrorShape;
  const name = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : 'Error';
  const errno = errnoOf(e);
  const status = e.$metadata?.httpStatusCode;
  const message = typeof e.message === 'string' ? e.message : '';
  const what = `S3 ${op}${key ? ` ${key}` : ''}: ${name}${status ? ` (HTTP ${status})` : ''}`;
  const opts = { cause: sanitizedCause(name, errno, status) };

  const conn = status === undefined ? connectionFailure(e, errno, message) : null;
  if (conn) {
    const text = `cannot reach ${where}: ${conn.errno} (${conn.what})`;
    return conn.tls ? new PermanentStoreError(text, 'TLS', opts) : new StoreUnreachableError(text, conn.errno, opts);
  }

  if (name === 'NoSuchUpload') return new NoSuchUploadError(key, uploadId ?? '');
  if (name === 'PreconditionFailed' || status === 412) return new PreconditionFailedError(key, opts);
  // Two conditional writes of one key at once: S3 asks to repeat (the repeat then meets its condition or not).
  if (name === 'ConditionalRequestConflict') return new TransientStoreError(what, opts);
  const permanent = PERMANENT_CODES[name];
  if (permanent) return new PermanentStoreError(what, permanent, opts);
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket')) return new NotFoundError(key);
  if (name === 'NoSuchBucket') return new PermanentStoreError(`${what}: the bucket does not exist`, 'NO_SUCH_BUCKET', opts);
  if (ACCESS_CODES.has(name) || status === 403 || status === 401) return new AccessDeniedError(`${what}: check the credentials and the bucket policy`, opts);
  if (
    TRANSIENT_CODES.has(name) ||
    TRANSIENT_ERRNO.has(errno) ||
    (status !== undefined && ((status >= 500 && status !== 501 && status !== 505) || status === 429 || status === 408)) ||
    /socket hang up|ECONNRESET|timed? ?out|network|aborted/i.test(message) ||
    name === 'AbortError'
  ) {
    return new TransientStoreError(`${what}${errno ? ` ${errno}` : ''}`, opts);
  }
  return new PermanentStoreError(what, 'PERMANENT', opts);
}

/** A plain cause with the diagnostic fields only (SDK errors can hold request details). */
function sanitizedCause(name: string, errno: string, status: number | undefined): Error {
  const c = new Error(`${name}${errno ? ` ${errno}` : ''}${status ? ` HTTP ${status}` : ''}`);
  c.name = name;
  return c;
}
