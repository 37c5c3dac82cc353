/**
 * Spawning of zfs/zpool, through src/source/child.ts: argument arrays only
 * (never a shell), LC_ALL=C (messages are matched by their English text)
 * and no AWS credentials or passphrase in the environment, stdin closed
 * unless a stream is given, stderr kept as a bounded tail, failures as
 * ZfsErrors (zfsChildErrors).
 */
import type { Readable } from 'node:stream';
import { pipeIntoChild, runChild, spawnCompleteStream, toolEnvironment, type ChildResult } from '../source/child.js';
import { zfsChildErrors } from './errors.js';
import type { SendStream } from './types.js';

/** Result of a finished command: stdout, stderr (up to 64 KiB) and its last STDERR_TAIL_BYTES. */
export type RunResult = ChildResult;

/**
 * Run a command to completion, collecting stdout. Resolves for any exit
 * status (callers classify failures); rejects only when it cannot start.
 */
export function run(argv: string[]): Promise<RunResult> {
  return runChild(argv, toolEnvironment(), zfsChildErrors);
}

/**
 * Spawn `argv` (a zfs send command) as a stream whose end means "complete":
 * it ends only after zfs exited 0, any other exit destroys it with the
 * ZfsError, and destroying it kills zfs (`done` rejects with ZFS_KILLED).
 * `what` names it in errors.
 */
export function spawnSend(argv: string[], what: string): SendStream {
  return spawnCompleteStream(argv, toolEnvironment(), what, zfsChildErrors);
}

/**
 * Run `argv` (a zfs receive command) with `input` piped into its stdin.
 * Rejects with the input's own error if `input` fails (zfs is killed before
 * its stdin closes, so the partial receive is discarded), else with a
 * ZfsError carrying zfs's stderr.
 */
export async function pipeInto(argv: string[], input: Readable, what: string, onWritten?: (bytes: number) => void): Promise<void> {
  await pipeIntoChild(argv, toolEnvironment(), input, what, zfsChildErrors, onWritten);
}
