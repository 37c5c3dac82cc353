/**
 * Retries around any `ObjectStore`: exponential backoff with jitter, for
 * `TransientStoreError` (store errors with `transient: true`) only. Permanent
 * errors (access denied, not found, bad digest, no such upload, ...) and
 * anything that is not a StoreError surface at once.
 *
 * Each call is retried on its own with the full budget: one part's bad luck
 * does not eat the retries of the next.
 *
 * A store that has never answered and cannot be reached
 * (`StoreUnreachableError`: refused, no such host, connect timeout) gets the
 * `firstContact` budget instead when one is given (interactive runs, see
 * ./retry-mode.ts): a wrong endpoint fails within seconds. Once any call got
 * an answer, every failure gets the full budget.
 *
 * Streams: `get` retries opening the object; a failure in the middle of the
 * body surfaces to the reader as a stream error. Readers resume with a
 * ranged `get` from the last byte they received.
 */
import pRetry from 'p-retry';
import type { Readable } from 'node:stream';
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
  RestoreTier,
  UploadedPart,
  UploadPartOptions,
  PutCondition,
} from './object-store.js';
import type { RetryConfig } from '../config/config.js';
import { NoSuchUploadError, StoreError, StoreUnreachableError } from './errors.js';
import { compareKeys, type StoreMethod } from './internal.js';

/** What `onRetry` learns about a failed attempt that will be retried. Carries no secrets. */
export interface RetryEvent {
  method: StoreMethod | 'callerIdentity';
  /** Object key (or listing prefix) the call concerns, when it has one. */
  key?: string;
  /** 1-based number of the attempt that failed. */
  attempt: number;
  retriesLeft: number;
  error: StoreError;
}

export interface RetryingStoreOptions {
  onRetry?: (event: RetryEvent) => void;
  /** Jitter (default true): randomize each delay by a factor in [1, 2). Turn off only in tests. */
  randomize?: boolean;
  /** Stops waiting and retrying when aborted. */
  signal?: AbortSignal;
  /** The budget for an unreachable store until it first answers (default: the full budget throughout). */
  firstContact?: RetryConfig;
}

export function isTransient(err: unknown): err is StoreError {
  return err instanceof StoreError && err.transient;
}

export class RetryingStore implements ObjectStore, IdentityProvider {
  /** Some call got an answer from the store (a result, or an error other than "cannot reach"). */
  private answered = false;

  /** The inner store's, retried as a whole (a listing is read-only); absent when the inner store has none. */
  readonly listRestoreStates?: (prefix: string) => Promise<Map<string, RestoreListEntry>>;

  constructor(
    readonly inner: ObjectStore & Partial<IdentityProvider>,
    private readonly config: RetryConfig,
    private readonly options: RetryingStoreOptions = {},
  ) {
    const listStates = inner.listRestoreStates?.bind(inner);
    if (listStates) this.listRestoreStates = (prefix) => this.retry('listRestoreStates', prefix, () => listStates(prefix));
  }

  get url(): string {
    return this.inner.url;
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    return this.retry('put', key, () => this.inner.put(key, body, options));
  }

  /** Retried like any call: a repeat after a lost reply fails its condition (see the contract). */
  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    return this.retry('putConditional', key, () => this.inner.putConditional(key, body, condition, options));
  }

  /** Retries opening the stream only; see the module comment. */
  async get(key: string, range?: ByteRange): Promise<Readable> {
    return this.retry('get', key, () => this.inner.get(key, range));
  }

  /** Retries the whole read (the body is buffered, so a failed transfer is simply repeated). */
  async getBytes(key: string): Promise<Uint8Array> {
    return this.retry('getBytes', key, () => this.inner.getBytes(key));
  }

  async head(key: string): Promise<ObjectInfo> {
    return this.retry('head', key, () => this.inner.head(key));
  }

  /**
   * Each step of the iteration is retried on its own; a listing that fails
   * midway restarts and skips the keys already yielded (listings are in key
   * order), so callers see every key once.
   */
  async *list(prefix: string): AsyncIterable<ListEntry> {
    let last: string | undefined;
    let iter: AsyncIterator<ListEntry> | undefined;
    for (;;) {
      const next = await this.retry('list', prefix, async () => {
        try {
          iter ??= this.inner.list(prefix)[Symbol.asyncIterator]();
          for (;;) {
            const r = await iter.next();
            if (r.done || last === undefined || compareKeys(r.value.key, last) > 0) return r;
          }
        } catch (err) {
          iter = undefined;
          throw err;
        }
      });
      if (next.done) return;
      last = next.value.key;
      yield next.value;
    }
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    return this.retry('deleteMany', keys[0], () => this.inner.deleteMany(keys));
  }

  /**
   * A retry after a lost reply may leave an extra, empty upload behind;
   * callers sweep unfinished uploads with `listMultipartUploads` (and the
   * bucket's AbortIncompleteMultipartUpload rule catches the rest).
   */
  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    return this.retry('createMultipartUpload', key, () => this.inner.createMultipartUpload(key, options));
  }

  /** Each attempt sends (and paces, with `options.pacer`) the whole body anew. */
  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, checksumSha256?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    return this.retry('uploadPart', key, () => this.inner.uploadPart(key, uploadId, partNumber, body, checksumSha256, options));
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    return this.retry('listParts', key, () => this.inner.listParts(key, uploadId));
  }

  /**
   * If an attempt failed transiently and a later one answers NoSuchUpload,
   * the failed attempt may have completed the upload with its reply lost.
   * Then the object is checked with `head`: the right size and a multipart
   * ETag with the right part count count as success; otherwise the
   * NoSuchUploadError stands.
   */
  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    let hadTransient = false;
    try {
      await this.retry(
        'completeMultipartUpload',
        key,
        () => this.inner.completeMultipartUpload(key, uploadId, parts),
        () => {
          hadTransient = true;
        },
      );
    } catch (err) {
      if (!(err instanceof NoSuchUploadError) || !hadTransient) throw err;
      const size = parts.reduce((n, p) => n + p.size, 0);
      let info: ObjectInfo;
      try {
        info = await this.head(key);
      } catch {
        throw err;
      }
      if (info.size !== size || !(info.etag ?? '').endsWith(`-${parts.length}`)) throw err;
    }
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    return this.retry('abortMultipartUpload', key, () => this.inner.abortMultipartUpload(key, uploadId));
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    return this.retry('listMultipartUploads', prefix, () => this.inner.listMultipartUploads(prefix));
  }

  async requestRestore(key: string, days: number, tier: RestoreTier): Promise<RestoreOutcome> {
    return this.retry('requestRestore', key, () => this.inner.requestRestore(key, days, tier));
  }

  /** The inner store's identity (retried), or null when it has none. */
  async callerIdentity(): Promise<{ account: string; arn: string; userId: string } | null> {
    const inner = this.inner;
    if (typeof inner.callerIdentity !== 'function') return null;
    // A null identity may just mean the endpoint was not reached (it is best-effort there): not an answer.
    return this.retry('callerIdentity', undefined, () => inner.callerIdentity!(), undefined, (id) => id !== null);
  }

  private async retry<T>(
    method: RetryEvent['method'],
    key: string | undefined,
    call: () => Promise<T>,
    onTransient?: () => void,
    isAnswer: (out: T) => boolean = () => true,
  ): Promise<T> {
    const { retries, minTimeoutMs, maxTimeoutMs } = this.config;
    const firstContact = this.options.firstContact;
    const tracked = async (): Promise<T> => {
      try {
        const out = await call();
        if (isAnswer(out)) this.answered = true;
        return out;
      } catch (err) {
        if (err instanceof StoreError && !(err instanceof StoreUnreachableError)) this.answered = true;
        throw err;
      }
    };
    // Before the first answer, "cannot reach" errors are retried here with the short budget only.
    const attempt = (): Promise<T> =>
      !firstContact || this.answered
        ? tracked()
        : pRetry(tracked, {
            retries: firstContact.retries,
            minTimeout: firstContact.minTimeoutMs,
            maxTimeout: Math.max(firstContact.minTimeoutMs, firstContact.maxTimeoutMs),
            factor: 2,
            randomize: this.options.randomize ?? true,
            signal: this.options.signal,
            shouldRetry: ({ error, attemptNumber, retriesLeft }) => {
              if (!(error instanceof StoreUnreachableError) || this.answered) return false;
              onTransient?.();
              this.options.onRetry?.({ method, ...(key === undefined ? {} : { key }), attempt: attemptNumber, retriesLeft, error });
              return true;
            },
          });
    return pRetry(attempt, {
      retries,
      minTimeout: minTimeoutMs,
      maxTimeout: Math.max(minTimeoutMs, maxTimeoutMs),
      factor: 2,
      randomize: this.options.randomize ?? true,
      signal: this.options.signal,
      shouldRetry: ({ error, attemptNumber, retriesLeft }) => {
        if (!isTransient(error)) return false;
        // The short first-contact budget is spent and the store never answered: give up.
        if (firstContact && !this.answered && error instanceof StoreUnreachableError) return false;
        onTransient?.();
        this.options.onRetry?.({ method, ...(key === undefined ? {} : { key }), attempt: attemptNumber, retriesLeft, error });
        return true;
      },
      onFailedAttempt: ({ error }) => {
        // Also called on the final failure: let the caller know the completing attempt may have run.
        if (isTransient(error)) onTransient?.();
      },
    });
  }
}
