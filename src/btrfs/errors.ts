/**
 * Errors raised by the btrfs adapter. Every failure of a spawned `btrfs` is
 * a `BtrfsError` carrying the argv, exit status and the tail of stderr, so
 * a user (and `--json` output) sees what btrfs itself said. The messages
 * matched below are btrfs-progs 6.2's under LC_ALL=C, captured in
 * test/fixtures/btrfs/*-stderr.txt.
 */
import { failureSummary, STDERR_TAIL_BYTES, ToolError, type ToolErrorDetails } from '../source/errors.js';
import type { ChildErrors, ChildOutcome } from '../source/child.js';

export { STDERR_TAIL_BYTES };

/** Codes of BtrfsError; stable for scripts and `--json` output. */
export type BtrfsErrorCode =
  | 'BTRFS_FAILED'
  | 'BTRFS_NOT_FOUND'
  | 'BTRFS_NOT_BTRFS'
  | 'BTRFS_NOT_SUBVOLUME'
  | 'BTRFS_NOT_READ_ONLY'
  | 'BTRFS_EXISTS'
  | 'BTRFS_BUSY'
  | 'BTRFS_MISSING'
  | 'BTRFS_UNSUPPORTED'
  | 'BTRFS_PARSE'
  | 'BTRFS_KILLED'
  | 'BTRFS_UNSAFE';

export type BtrfsErrorDetails = ToolErrorDetails;

/** A `btrfs` command failed, or its output could not be understood. Exit code 7 (that of a failed snapshot tool). */
export class BtrfsError extends ToolError<BtrfsErrorCode> {
  constructor(message: string, code: BtrfsErrorCode = 'BTRFS_FAILED', details: BtrfsErrorDetails = {}) {
    super(message, code, details);
  }
}

/** What btrfs says, most specific first, and the advice that goes with it. */
const RULES: ReadonlyArray<{ re: RegExp; code: BtrfsErrorCode; hint: string }> = [
  { re: /cannot find parent subvolume/i, code: 'BTRFS_NOT_FOUND', hint: 'the base of this incremental is not on the receiving side: receive the streams in order' },
  { re: /not a btrfs subvolume/i, code: 'BTRFS_NOT_SUBVOLUME', hint: 'name the subvolume itself ("btrfs subvolume list" shows them), not a directory inside it' },
  { re: /not a btrfs filesystem|can't access/i, code: 'BTRFS_NOT_BTRFS', hint: 'the path is not on a mounted btrfs' },
  { re: /is not read-only/i, code: 'BTRFS_NOT_READ_ONLY', hint: 'only read-only snapshots can be sent ("btrfs subvolume snapshot -r")' },
  { re: /no such file or directory|cannot find real path|unable to resolve|cannot open/i, code: 'BTRFS_NOT_FOUND', hint: 'check the path' },
  { re: /file exists|already exists/i, code: 'BTRFS_EXISTS', hint: 'choose another name or delete the existing subvolume' },
  { re: /device or resource busy|during send|directory not empty/i, code: 'BTRFS_BUSY', hint: 'stop what uses it (a running send) and try again' },
];

/** Map a failed command to the most specific error by what btrfs wrote on stderr. `what` names the operation and its object. */
export function classifyBtrfsFailure(what: string, details: BtrfsErrorDetails): BtrfsError {
  const stderr = details.stderrTail ?? '';
  const base = failureSummary(what, details);
  const rule = RULES.find((r) => r.re.test(stderr));
  if (rule) return new BtrfsError(`${base} — ${rule.hint}`, rule.code, details);
  if (details.signal) return new BtrfsError(base, 'BTRFS_KILLED', details);
  return new BtrfsError(base, 'BTRFS_FAILED', details);
}

/** The error for a spawn that failed before btrfs ran (ENOENT, EACCES). */
export function btrfsSpawnFailure(argv: string[], err: NodeJS.ErrnoException): BtrfsError {
  const prog = JSON.stringify(argv[0]);
  const fix = err.code === 'ENOENT' ? 'not found — install btrfs-progs (apt-get install btrfs-progs)' : `${err.message} — check the btrfs command in the config`;
  return new BtrfsError(`cannot run ${prog}: ${fix}`, 'BTRFS_MISSING', { argv, cause: err });
}

/** BtrfsErrors for src/source/child.ts. */
export const btrfsChildErrors: ChildErrors = {
  spawnFailed: btrfsSpawnFailure,
  failed: (what: string, o: ChildOutcome) => classifyBtrfsFailure(what, o),
  stopped: (what: string, o: ChildOutcome) => new BtrfsError(`${what} was stopped before it finished (its stream was closed)`, 'BTRFS_KILLED', o),
  other: (message, o) => new BtrfsError(message, 'BTRFS_FAILED', o),
};
