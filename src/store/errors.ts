/**
 * Typed errors of the `ObjectStore` contract. Implementations translate their
 * transport's errors (SDK exceptions, errno codes) into exactly these, so no
 * SDK type leaks above `src/store/`.
 */
import { ExitCode, ZbkError } from '../errors.js';

/** Base class: every store failure. `transient` tells the retry wrapper whether a retry may help. */
export class StoreError extends ZbkError {
  readonly transient: boolean;
  constructor(message: string, code: string, transient = false, options?: { cause?: unknown }) {
    super(message, code, ExitCode.STORE, options);
    this.transient = transient;
  }
}

/** The object (or bucket) does not exist. Never retried. */
export class NotFoundError extends StoreError {
  constructor(key: string) {
    super(`object not found: ${key}`, 'NOT_FOUND');
  }
}

/** The object is in an archive class and has no restored copy: request a restore first. */
export class ArchivedError extends StoreError {
  readonly storageClass: string;
  constructor(key: string, storageClass: string) {
    super(`object is archived in ${storageClass} and must be restored before it can be read: ${key}`, 'ARCHIVED');
    this.storageClass = storageClass;
  }
}

/** A restore of an archived object is running; read it once it completes. */
export class RestoreInProgressError extends StoreError {
  constructor(key: string) {
    super(`restore already in progress: ${key}`, 'RESTORE_IN_PROGRESS');
  }
}

/** The multipart upload id is unknown (completed, aborted or expired). */
export class NoSuchUploadError extends StoreError {
  constructor(key: string, uploadId: string) {
    super(`no such multipart upload for ${key} (upload id ${uploadId.slice(0, 16)}…)`, 'NO_SUCH_UPLOAD');
  }
}

/** Credentials missing, invalid or lacking permission. Never retried. */
export class AccessDeniedError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ACCESS_DENIED', false, options);
  }
}

/** A failure that may succeed if retried: 5xx, SlowDown, timeouts, connection resets. */
export class TransientStoreError extends StoreError {
  constructor(message: string, options?: { cause?: unknown }, code = 'TRANSIENT') {
    super(message, code, true, options);
  }
}

/**
 * No connection to the store at all: refused, no such host, DNS failure, no
 * route, or no connection within the connect timeout. The message names the
 * endpoint (or bucket and region) and the errno, never request details.
 * Transient (a network may come up), but `RetryingStore` gives a store that
 * has never answered only its short first-contact budget when it has one
 * (interactive runs; see src/store/retry-mode.ts).
 */
export class StoreUnreachableError extends TransientStoreError {
  /** ECONNREFUSED, ENOTFOUND, EAI_AGAIN, EHOSTUNREACH, ENETUNREACH or ETIMEDOUT (connect). */
  readonly errno: string;
  constructor(message: string, errno: string, options?: { cause?: unknown }) {
    super(message, options, 'UNREACHABLE');
    this.errno = errno;
  }
}

/** Any other failure that a retry will not fix (4xx, bad digest, invalid part). */
export class PermanentStoreError extends StoreError {
  constructor(message: string, code = 'PERMANENT', options?: { cause?: unknown }) {
    super(message, code, false, options);
  }
}

/** A conditional write's condition did not hold (S3: 412 PreconditionFailed): nothing was written. */
export class PreconditionFailedError extends PermanentStoreError {
  constructor(key: string, options?: { cause?: unknown }) {
    super(`conditional write of ${key} refused: the object changed (or appeared, or is gone) since it was read`, 'PRECONDITION_FAILED', options);
  }
}
