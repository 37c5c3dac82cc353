/**
 * Typed errors shared by every layer, and the exit codes they map to.
 *
 * Every error zbk raises on purpose is a `ZbkError`: it carries a stable
 * `code` (for `--json` output and scripts) and an `exitCode` (documented in
 * the README's exit-code table). Messages are one line, say what to do, and
 * never contain secrets (passphrases, keys, webhook URLs, credentials).
 */

/** Documented process exit codes. Keep in sync with README.md "Exit codes". */
export const ExitCode = {
  /** Success. */
  OK: 0,
  /** The operation failed, or a check (`zbk check`, `zbk doctor`) found a problem. */
  FAILURE: 1,
  /** Bad command-line usage or invalid input (flags, dataset names). */
  USAGE: 2,
  /** Configuration missing or invalid, or the repository is not initialised. */
  CONFIG: 3,
  /** Wrong passphrase, or an unreadable/corrupt key file. */
  KEY: 4,
  /** The object store refused or could not be reached (credentials, network, bucket). */
  STORE: 5,
  /** Data failed an integrity check (tampering, corruption, truncation). */
  INTEGRITY: 6,
  /** A `zfs`/`zpool` command failed. */
  ZFS: 7,
  /** Another zbk process holds the manifest lock, or another machine the writer lease (`--no-wait`), or the lease was lost. */
  LOCKED: 8,
  /** The local manifest database is corrupt, from a newer zbk, or behind the store (MANIFEST_STALE). */
  MANIFEST: 9,
  /** Interrupted by a signal. */
  INTERRUPTED: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class ZbkError extends Error {
  /** Stable machine-readable identifier, e.g. `WRONG_PASSPHRASE`. */
  readonly code: string;
  readonly exitCode: ExitCodeValue;

  constructor(message: string, code: string, exitCode: ExitCodeValue, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad user input (flags, names, sizes). */
export class UsageError extends ZbkError {
  constructor(message: string, code = 'USAGE') {
    super(message, code, ExitCode.USAGE);
  }
}

/** Missing or invalid configuration. */
export class ConfigError extends ZbkError {
  constructor(message: string, code = 'CONFIG') {
    super(message, code, ExitCode.CONFIG);
  }
}

/** Data did not authenticate or did not match its recorded hash. */
export class IntegrityError extends ZbkError {
  constructor(message: string, code = 'INTEGRITY', options?: { cause?: unknown }) {
    super(message, code, ExitCode.INTEGRITY, options);
  }
}

/** An object read from the store failed authentication: `key` names it (for the damage record). */
export class ObjectIntegrityError extends IntegrityError {
  constructor(
    message: string,
    readonly key: string,
    code = 'INTEGRITY',
    options?: { cause?: unknown },
  ) {
    super(message, code, options);
  }
}

/** The passphrase does not open the key file. */
export class WrongPassphraseError extends ZbkError {
  constructor(message = 'wrong passphrase: it does not open the key file') {
    super(message, 'WRONG_PASSPHRASE', ExitCode.KEY);
  }
}

/** The key file is unreadable, corrupt, or of an unknown version. */
export class KeyFileError extends ZbkError {
  constructor(message: string, code = 'KEY_FILE') {
    super(message, code, ExitCode.KEY);
  }
}

/** Another process holds the lock. */
export class LockedError extends ZbkError {
  constructor(message: string) {
    super(message, 'LOCKED', ExitCode.LOCKED);
  }
}

/** The local manifest is corrupt, or was written by a newer zbk. */
export class ManifestError extends ZbkError {
  constructor(message: string, code = 'MANIFEST', exitCode: ExitCodeValue = ExitCode.MANIFEST) {
    super(message, code, exitCode);
  }
}

/** Generic operational failure with a clear message. */
export class OperationError extends ZbkError {
  constructor(message: string, code = 'FAILED', options?: { cause?: unknown }) {
    super(message, code, ExitCode.FAILURE, options);
  }
}

/** Best-effort mapping of any thrown value to an exit code. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof ZbkError) return err.exitCode;
  return ExitCode.FAILURE;
}
