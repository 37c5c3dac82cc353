/**
 * Errors raised by the zfs adapter. Every failure of a spawned `zfs`/`zpool`
 * is a `ZfsError` carrying the argv, exit status and the tail of stderr, so a
 * user (and `--json` output) sees what zfs itself said.
 */
import type { ChildErrors, ChildOutcome } from '../source/child.js';
import { failureSummary, oneLine, STDERR_TAIL_BYTES, ToolError, type ToolErrorDetails } from '../source/errors.js';

/** How much of zfs's stderr is kept on an error; `oneLine` collapses it for a message. */
export { oneLine, STDERR_TAIL_BYTES };

/** Codes of ZfsError; stable for scripts and `--json` output. */
export type ZfsErrorCode =
  | 'ZFS_FAILED'
  | 'ZFS_NOT_FOUND'
  | 'ZFS_EXISTS'
  | 'ZFS_BUSY'
  | 'ZFS_MISSING'
  | 'ZFS_UNSUPPORTED'
  | 'ZFS_PARSE'
  | 'ZFS_KILLED'
  | 'ZFS_NOT_READY';

export type ZfsErrorDetails = ToolErrorDetails;

/**
 * A `zfs`/`zpool` command failed, or its output could not be understood. Exit code 7.
 * `argv` is the full command line that was spawned (never contains secrets: only names and flags).
 */
export class ZfsError extends ToolError<ZfsErrorCode> {
  constructor(message: string, code: ZfsErrorCode = 'ZFS_FAILED', details: ZfsErrorDetails = {}) {
    super(message, code, details);
  }
}

/** The dataset, snapshot or bookmark does not exist. */
export class ZfsNotFoundError extends ZfsError {
  constructor(message: string, details: ZfsErrorDetails = {}) {
    super(message, 'ZFS_NOT_FOUND', details);
  }
}

/** The dataset or snapshot to be created already exists. */
export class ZfsExistsError extends ZfsError {
  constructor(message: string, details: ZfsErrorDetails = {}) {
    super(message, 'ZFS_EXISTS', details);
  }
}

/** The dataset is busy or the snapshot is held. */
export class ZfsBusyError extends ZfsError {
  constructor(message: string, details: ZfsErrorDetails = {}) {
    super(message, 'ZFS_BUSY', details);
  }
}

/** The zfs/zpool program (or its sudo wrapper) could not be started. */
export class ZfsMissingError extends ZfsError {
  constructor(message: string, details: ZfsErrorDetails = {}) {
    super(message, 'ZFS_MISSING', details);
  }
}

/** The installed ZFS lacks a feature (bookmarks, `zfs holds`, ...). Callers check capabilities first. */
export class ZfsUnsupportedError extends ZfsError {
  constructor(message: string, details: ZfsErrorDetails = {}) {
    super(message, 'ZFS_UNSUPPORTED', details);
  }
}

/**
 * Map a failed command to the most specific error class by what zfs wrote on
 * stderr. OpenZFS 2.3 refuses a held destroy with "it's being held" (captured in
 * test/fixtures/zfs/openzfs-2.3/destroy-held-stderr.txt).
 * `what` describes the operation and its object, e.g. `zfs send of 'tank/a@s1'`.
 */
export function classifyZfsFailure(what: string, details: ZfsErrorDetails): ZfsError {
  const stderr = details.stderrTail ?? '';
  const base = failureSummary(what, details);
  if (/does not exist|no such pool|no such dataset|could not find any snapshots/i.test(stderr)) {
    return new ZfsNotFoundError(`${base} — check the name with "zfs list -t all"`, details);
  }
  if (/already exists|destination '.*' exists/i.test(stderr)) {
    return new ZfsExistsError(`${base} — choose another name or destroy the existing one`, details);
  }
  if (/dataset is busy|pool or dataset is busy|is held|being held|tag already exists|device busy/i.test(stderr)) {
    return new ZfsBusyError(`${base} — release holds ("zfs holds"/"zfs release") or stop what uses it`, details);
  }
  if (details.signal) return new ZfsError(base, 'ZFS_KILLED', details);
  return new ZfsError(base, 'ZFS_FAILED', details);
}

/** The error for a spawn that failed before the program ran (ENOENT, EACCES). */
export function spawnFailure(argv: string[], err: NodeJS.ErrnoException): ZfsError {
  const prog = JSON.stringify(argv[0]);
  if (err.code === 'ENOENT') {
    return new ZfsMissingError(
      `cannot run ${prog}: not found — install ZFS or set [zfs] zfs/zpool in the config to the right command`,
      { argv, cause: err },
    );
  }
  return new ZfsMissingError(`cannot run ${prog}: ${err.message} — check the [zfs] commands in the config`, { argv, cause: err });
}

/** ZfsErrors for src/source/child.ts. */
export const zfsChildErrors: ChildErrors = {
  spawnFailed: spawnFailure,
  failed: (what: string, o: ChildOutcome) => classifyZfsFailure(what, o),
  stopped: (what: string, o: ChildOutcome) => new ZfsError(`${what} was stopped before it finished (the stream was closed)`, 'ZFS_KILLED', o),
  other: (message, o) => new ZfsError(message, 'ZFS_FAILED', o),
  trailingInput: (what, o) => new ZfsError(`${what}: zfs exited before reading all input — the stream has trailing data or is corrupt`, 'ZFS_FAILED', o),
};
