/**
 * What a restore needs from the place it receives into, per source (picked
 * by the dataset's name, src/services/push/source.ts): a ZFS dataset
 * (./target-zfs.ts) or a directory on btrfs (./target-btrfs.ts). ./target.ts
 * is what the restore's steps call; it delegates here.
 */
import type { Readable } from 'node:stream';
import type { JobStream } from './job.js';
import type { RestoreStep } from './step.js';

/** What {@link RestoreTargetPort.prepare} decided for one receive (ZFS: roll back with -F or not). */
export interface ReceivePlan {
  force: boolean;
}

export interface RestoreTargetPort {
  /** Why an interrupted receive starts again from the stream's first byte (said when it does). */
  readonly restartReason: string;

  /** First run of a job: refuse a target that exists and is not this restore's, unless --force; record what later runs check. */
  claim(step: RestoreStep): Promise<void>;

  /**
   * Identities (decimal text, as the job records `to.guid`) of the snapshots
   * on the target that this restore can build on. btrfs also finishes a
   * receive whose rename into place was interrupted.
   */
  receivedIds(step: RestoreStep): Promise<Set<string>>;

  /** Checks before the receive of stream `si` (nothing this restore did not put there is overwritten without --force). */
  prepare(step: RestoreStep, si: number): Promise<ReceivePlan>;

  /** Receive `input` (the plaintext of stream `si`) into the target. */
  receive(step: RestoreStep, si: number, input: Readable, plan: ReceivePlan, onWritten?: (bytes: number) => void): Promise<void>;

  /** A receive's failure as the user should read it (si: the stream's index in the chain). */
  explainFailure(step: RestoreStep, err: unknown, si: number): unknown;

  /** After a receive of `s` succeeded: check the snapshot carries the pushed identity, and put it in place. */
  confirm(step: RestoreStep, s: JobStream): Promise<void>;

  /** The restore is done: make it usable (ZFS mounts it) and say where it is. */
  finish(step: RestoreStep): Promise<void>;
}
