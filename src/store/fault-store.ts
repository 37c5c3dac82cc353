/**
 * Fault injection around any `ObjectStore` (in the spirit of kopia's
 * blobtesting fault store), for tests of retry, resume and crash recovery.
 *
 * Rules match calls by method, in the order they were added; the first rule
 * that fires decides the call's fault. A rule fires either by `sequence`
 * (the n-th matching call gets `sequence[n]`; `null` or past the end = pass)
 * or by `probability` with its `kind` (probability defaults to 1).
 * `times` caps how often a rule fires.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import type {
  ByteRange,
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
import { AccessDeniedError, TransientStoreError } from './errors.js';
import { type StoreMethod, zeroCounts } from './internal.js';

export type { StoreMethod } from './internal.js';

/**
 * - `transient`: TransientStoreError before the call reaches the store (like a 503).
 * - `transient-after`: the call takes effect, then TransientStoreError (the reply was lost).
 * - `access-denied`: AccessDeniedError before the call.
 * - `crash`: SimulatedCrashError before the call (the process "dies"; not retryable).
 * - `crash-after`: the call takes effect, then SimulatedCrashError.
 * - `stream-reset`: `get` only: the stream errors with TransientStoreError after
 *   `afterBytes` bytes (default: half the data). On other methods acts as `transient`.
 */
export type StoreFaultKind = 'transient' | 'transient-after' | 'access-denied' | 'crash' | 'crash-after' | 'stream-reset';

export interface StoreFaultRule {
  /** Methods the rule applies to; all methods when absent. */
  method?: StoreMethod | readonly StoreMethod[];
  kind?: StoreFaultKind;
  probability?: number;
  sequence?: readonly (StoreFaultKind | null)[];
  times?: number;
  /** For `stream-reset`: bytes delivered before the stream fails. */
  afterBytes?: number;
}

/** Stands in for the process dying mid-call. Deliberately not a StoreError, so no retry wrapper retries it. */
export class SimulatedCrashError extends Error {
  constructor(method: string) {
    super(`simulated crash during ${method}`);
    this.name = 'SimulatedCrashError';
  }
}

interface ActiveRule {
  rule: StoreFaultRule;
  seen: number;
  fired: number;
}

interface Decision {
  kind: StoreFaultKind;
  afterBytes?: number;
}

export interface FaultInjectingStoreOptions {
  /** Random source in [0, 1) for probabilistic rules; pass a seeded one for reproducible tests. */
  random?: () => number;
}

export class FaultInjectingStore implements ObjectStore {
  /** Calls per method, including failed ones. */
  readonly calls: Record<StoreMethod, number> = zeroCounts();
  /** Faults injected per method. */
  readonly injected: Record<StoreMethod, number> = zeroCounts();
  private rules: ActiveRule[] = [];
  private readonly random: () => number;
  /** The inner store's, with faults as any call (method 'listRestoreStates'); absent when the inner store has none. */
  readonly listRestoreStates?: (prefix: string) => Promise<Map<string, RestoreListEntry>>;

  constructor(
    readonly inner: ObjectStore,
    options: FaultInjectingStoreOptions = {},
  ) {
    this.random = options.random ?? Math.random;
    const listStates = inner.listRestoreStates?.bind(inner);
    if (listStates) this.listRestoreStates = (prefix) => this.run('listRestoreStates', () => listStates(prefix));
  }

  get url(): string {
    return this.inner.url;
  }

  /** Add a rule (evaluated after the ones already present). Returns `this` for chaining. */
  addFault(rule: StoreFaultRule): this {
    if (rule.kind === undefined && rule.sequence === undefined) throw new Error('a fault rule needs kind or sequence');
    this.rules.push({ rule, seen: 0, fired: 0 });
    return this;
  }

  /** Script the next calls of `method`: one entry per call, `null` = let it through. */
  script(method: StoreMethod, ...sequence: (StoreFaultKind | null)[]): this {
    return this.addFault({ method, sequence });
  }

  clearFaults(): void {
    this.rules = [];
  }

  async put(key: string, body: Uint8Array, options?: PutOptions): Promise<void> {
    return this.run('put', () => this.inner.put(key, body, options));
  }

  async putConditional(key: string, body: Uint8Array, condition: PutCondition, options?: PutOptions): Promise<string> {
    return this.run('putConditional', () => this.inner.putConditional(key, body, condition, options));
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const d = this.decide('get');
    if (d?.kind === 'stream-reset') {
      const stream = await this.inner.get(key, range);
      const t = resetAfter(d.afterBytes, range);
      stream.on('error', (err) => t.destroy(err));
      return stream.pipe(t);
    }
    return this.apply('get', d, () => this.inner.get(key, range));
  }

  async getBytes(key: string): Promise<Uint8Array> {
    return this.run('getBytes', () => this.inner.getBytes(key));
  }

  async head(key: string): Promise<ObjectInfo> {
    return this.run('head', () => this.inner.head(key));
  }

  async *list(prefix: string): AsyncIterable<ListEntry> {
    const iterable = await this.run('list', async () => this.inner.list(prefix));
    yield* iterable;
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    return this.run('deleteMany', () => this.inner.deleteMany(keys));
  }

  async createMultipartUpload(key: string, options?: PutOptions): Promise<string> {
    return this.run('createMultipartUpload', () => this.inner.createMultipartUpload(key, options));
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, checksumSha256?: string, options?: UploadPartOptions): Promise<UploadedPart> {
    return this.run('uploadPart', () => this.inner.uploadPart(key, uploadId, partNumber, body, checksumSha256, options));
  }

  async listParts(key: string, uploadId: string): Promise<UploadedPart[]> {
    return this.run('listParts', () => this.inner.listParts(key, uploadId));
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: readonly UploadedPart[]): Promise<void> {
    return this.run('completeMultipartUpload', () => this.inner.completeMultipartUpload(key, uploadId, parts));
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    return this.run('abortMultipartUpload', () => this.inner.abortMultipartUpload(key, uploadId));
  }

  async listMultipartUploads(prefix: string): Promise<MultipartUploadInfo[]> {
    return this.run('listMultipartUploads', () => this.inner.listMultipartUploads(prefix));
  }

  async requestRestore(key: string, days: number, tier: RestoreTier): Promise<RestoreOutcome> {
    return this.run('requestRestore', () => this.inner.requestRestore(key, days, tier));
  }

  private async run<T>(method: StoreMethod, call: () => Promise<T>): Promise<T> {
    return this.apply(method, this.decide(method), call);
  }

  private async apply<T>(method: StoreMethod, d: Decision | undefined, call: () => Promise<T>): Promise<T> {
    if (!d) return call();
    switch (d.kind) {
      case 'transient':
      case 'stream-reset':
        throw new TransientStoreError(`injected transient failure in ${method}`);
      case 'access-denied':
        throw new AccessDeniedError(`injected access denied in ${method}`);
      case 'crash':
        throw new SimulatedCrashError(method);
      case 'transient-after':
        await call();
        throw new TransientStoreError(`injected transient failure after ${method} took effect`);
      case 'crash-after':
        await call();
        throw new SimulatedCrashError(method);
    }
  }

  private decide(method: StoreMethod): Decision | undefined {
    this.calls[method]++;
    for (const a of this.rules) {
      const m = a.rule.method;
      if (m !== undefined && (typeof m === 'string' ? m !== method : !m.includes(method))) continue;
      const index = a.seen++;
      if (a.rule.times !== undefined && a.fired >= a.rule.times) continue;
      const kind = a.rule.sequence ? (a.rule.sequence[index] ?? null) : this.random() < (a.rule.probability ?? 1) ? (a.rule.kind ?? null) : null;
      if (!kind) continue;
      a.fired++;
      this.injected[method]++;
      return a.rule.afterBytes === undefined ? { kind } : { kind, afterBytes: a.rule.afterBytes };
    }
    return undefined;
  }
}

/** Pass `afterBytes` bytes (default: half of the requested range, else 1 byte), then fail the stream. */
function resetAfter(afterBytes: number | undefined, range: ByteRange | undefined): Transform {
  let limit = afterBytes ?? (range ? Math.floor((range.end - range.start + 1) / 2) : -1);
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (limit < 0) limit = Math.floor(chunk.length / 2);
      const room = limit - seen;
      if (chunk.length <= room) {
        seen += chunk.length;
        cb(null, chunk);
        return;
      }
      if (room > 0) this.push(chunk.subarray(0, room));
      seen = limit;
      cb(new TransientStoreError('injected connection reset while reading the object'));
    },
    flush(cb: TransformCallback) {
      // A body shorter than the limit still fails: the fault was decided for this call.
      cb(new TransientStoreError('injected connection reset while reading the object'));
    },
  });
}
