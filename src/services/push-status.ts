/**
 * The outcome of the last push of each dataset, kept in
 * `<state_dir>/push-status.json` so `zbk check` sees every failed push —
 * also one that failed before the key file or the manifest could be opened
 * (wrong or missing passphrase, store unreachable, lock held with
 * `--no-wait`), which the manifest's events table cannot record.
 *
 *   {"v": 1, "datasets": {"tank/photos": {
 *     "lastSuccess": "2025-01-02T02:31:07.000Z",
 *     "lastFailure": {"at": "…", "code": "WRONG_PASSPHRASE", "exitCode": 4, "message": "…"}}}}
 *
 * Written atomically (temporary file, fsync, rename) under a short-lived
 * `push-status.json.lock`, so a reader never sees half a file and two
 * writers (a push and a `--no-wait` push refused by its lock) do not lose
 * each other's update. Messages are one line, redacted (see hooks.ts), at
 * most 300 characters.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { OperationError } from '../errors.js';

export const PUSH_STATUS_FILE = 'push-status.json';

export interface PushFailureRecord {
  /** ISO time of the failure. */
  at: string;
  /** The error's stable code (e.g. WRONG_PASSPHRASE, STORE_UNREACHABLE, LOCKED). */
  code: string;
  exitCode: number;
  /** First line of the error message, redacted. */
  message: string;
}

export interface DatasetPushStatus {
  /** ISO time of the last push of this dataset that succeeded (also "nothing to push"). */
  lastSuccess: string | null;
  lastFailure: PushFailureRecord | null;
}

export interface PushStatus {
  v: 1;
  datasets: Record<string, DatasetPushStatus>;
}

export type PushOutcome = { ok: true; at: Date } | { ok: false; at: Date; code: string; exitCode: number; message: string };

export function pushStatusPath(stateDir: string): string {
  return join(stateDir, PUSH_STATUS_FILE);
}

/**
 * The recorded outcomes; an empty status when the file does not exist.
 * @throws OperationError (PUSH_STATUS_UNREADABLE) when it exists but cannot be read or parsed.
 */
export function readPushStatus(stateDir: string): PushStatus {
  const path = pushStatusPath(stateDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { v: 1, datasets: {} };
    throw new OperationError(`cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'PUSH_STATUS_UNREADABLE');
  }
  try {
    const doc = JSON.parse(text) as Partial<PushStatus>;
    if (doc.v !== 1 || typeof doc.datasets !== 'object' || doc.datasets === null) throw new Error('unexpected content');
    return { v: 1, datasets: doc.datasets };
  } catch (err) {
    throw new OperationError(`${path} is not a zbk push status file (${(err as Error).message}): remove it; the next push writes it again`, 'PUSH_STATUS_UNREADABLE');
  }
}

/** The status of one dataset as `check` reads it (both fields null when never recorded). */
export function datasetPushStatus(status: PushStatus, dataset: string): DatasetPushStatus {
  const s = status.datasets[dataset];
  return { lastSuccess: typeof s?.lastSuccess === 'string' ? s.lastSuccess : null, lastFailure: s?.lastFailure ?? null };
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Take the writers' lock file (at most ~2 s of waiting; one older than 10 s is a killed writer's). Returns false if not taken. */
function takeLock(path: string): boolean {
  for (let i = 0; i < 100; i++) {
    try {
      closeSync(openSync(path, 'wx', 0o600));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return false;
      try {
        if (Date.now() - statSync(path).mtimeMs > 10_000) rmSync(path, { force: true });
      } catch {
        // gone meanwhile
      }
      sleepSync(20);
    }
  }
  return false;
}

/**
 * Record the outcome of a push of `datasets`: a success clears nothing but
 * is newer than the failure before it; a failure stays until a later
 * success. An unreadable old file is replaced. Throws only when the file
 * cannot be written (the caller warns; the push result is unchanged).
 */
export function recordPushOutcome(stateDir: string, datasets: readonly string[], outcome: PushOutcome): void {
  if (datasets.length === 0) return;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const path = pushStatusPath(stateDir);
  const lock = `${path}.lock`;
  // Without the lock (a writer stuck for seconds) we still write: a lost update is better than no record.
  const locked = takeLock(lock);
  try {
    let status: PushStatus;
    try {
      status = readPushStatus(stateDir);
    } catch {
      status = { v: 1, datasets: {} };
    }
    const at = outcome.at.toISOString();
    for (const ds of datasets) {
      const prev = datasetPushStatus(status, ds);
      status.datasets[ds] = outcome.ok
        ? { ...prev, lastSuccess: at }
        : { ...prev, lastFailure: { at, code: outcome.code, exitCode: outcome.exitCode, message: outcome.message.split('\n')[0]!.slice(0, 300) } };
    }
    const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(status, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, path);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    try {
      const dfd = openSync(stateDir, 'r');
      try {
        fsyncSync(dfd);
      } finally {
        closeSync(dfd);
      }
    } catch {
      // Directory fsync is not supported everywhere; the rename is still atomic.
    }
  } finally {
    if (locked) rmSync(lock, { force: true });
  }
}
