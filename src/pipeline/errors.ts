/** Typed errors raised by the streaming pipeline. */
import { ExitCode, ZbkError } from '../errors.js';

/**
 * The source being uploaded does not match what an earlier, interrupted run
 * already stored (different bytes, a different length, a changed layout).
 * Nothing was overwritten; the caller should abort the old upload and start
 * the stream afresh.
 */
export class ResumeMismatchError extends ZbkError {
  constructor(message: string) {
    super(message, 'RESUME_MISMATCH', ExitCode.FAILURE);
  }
}

/** The operation was cancelled through its AbortSignal. In-flight work has settled. */
export class AbortError extends ZbkError {
  constructor(message = 'operation aborted', options?: { cause?: unknown }) {
    super(message, 'ABORTED', ExitCode.INTERRUPTED, options);
  }
}
