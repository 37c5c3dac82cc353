/** Typed manifest errors services can branch on. */
import { ExitCode, IntegrityError, ManifestError } from '../errors.js';

/**
 * A restore chain has a gap: some incremental's base snapshot has no complete
 * stream ending at it. `missing` names the link; `neededBy` the stream whose
 * base it is.
 */
export class BrokenChainError extends ManifestError {
  readonly dataset: string;
  readonly missing: { name: string; guid: bigint };
  readonly neededBy: string;
  constructor(dataset: string, missing: { name: string; guid: bigint }, neededBy: string) {
    super(
      `restore chain of ${dataset} is broken: no restorable stream ends at snapshot ${missing.name} (guid ${missing.guid}), ` +
        `the base of stream ${neededBy}; run "zbk verify" and push a new full stream`,
      'CHAIN_BROKEN',
    );
    this.dataset = dataset;
    this.missing = missing;
    this.neededBy = neededBy;
  }
}

/**
 * The dataset has no complete stream ending at the requested snapshot
 * (`what`), or none at all (no `what`): bad input (exit 2, a typo in a
 * dataset or snapshot name), not a damaged manifest.
 */
export class SnapshotNotPushedError extends ManifestError {
  readonly dataset: string;
  constructor(dataset: string, what?: string) {
    super(
      what === undefined ? `${dataset}: nothing has been pushed yet (no restorable stream)` : `${dataset}: ${what} has not been pushed (no restorable stream ends there)`,
      'SNAPSHOT_NOT_PUSHED',
      ExitCode.USAGE,
    );
    this.dataset = dataset;
  }
}

/** Message used whenever a corrupt manifest is refused. */
export function corruptMessage(path: string, detail: string): string {
  return (
    `the manifest database ${path} is corrupt (${detail}); it was left untouched. ` +
    `Rebuild it from the bucket with "zbk manifest rebuild --force" (the damaged file is moved aside, not deleted)`
  );
}

/**
 * Every chain that restores a snapshot goes through an object `zbk verify`
 * or a restore found damaged (missing, replaced, failing authentication).
 * `damaged` names them. Exit code 6 (an integrity failure).
 */
export class DamagedChainError extends IntegrityError {
  readonly dataset: string;
  readonly snapshot: string;
  readonly damaged: { key: string; snapshot: string; problem: string }[];
  constructor(dataset: string, snapshot: string, damaged: { key: string; snapshot: string; problem: string }[]) {
    const first = damaged[0];
    super(
      `${dataset}@${snapshot} cannot be restored: its chain includes ${damaged.length} damaged object(s)` +
        (first ? ` (${first.key}, of the stream to @${first.snapshot}: ${first.problem})` : '') +
        `; "zbk status ${dataset}" names the snapshots still restorable, "zbk push --full ${dataset}" starts a new chain`,
      'CHAIN_DAMAGED',
    );
    this.dataset = dataset;
    this.snapshot = snapshot;
    this.damaged = damaged;
  }
}
