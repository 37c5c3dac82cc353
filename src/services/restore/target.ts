/**
 * The place a restore receives into, as the restore's steps see it: fixed
 * by the first run (./target-port.ts says what each source checks), read
 * back for the snapshots it already has (so a crash between a receive and
 * the job's save is harmless), and checked before each receive. The source
 * is the dataset's (src/services/push/source.ts): a ZFS dataset
 * (./target-zfs.ts) or a directory on btrfs (./target-btrfs.ts).
 */
import { UsageError } from '../../errors.js';
import { sourceKindOf } from '../push/source.js';
import { markReceiveStarted, receiveRestartNote } from './receive-restart.js';
import { removeStaged } from './staging.js';
import type { RestoreStep } from './step.js';
import { btrfsRestoreTarget } from './target-btrfs.js';
import type { ReceivePlan, RestoreTargetPort } from './target-port.js';
import { zfsRestoreTarget } from './target-zfs.js';

export type { ReceivePlan } from './target-port.js';

/** The target port of the restore `step` advances. */
export function targetPort(step: RestoreStep): RestoreTargetPort {
  return sourceKindOf(step.job.dataset) === 'btrfs' ? btrfsRestoreTarget : zfsRestoreTarget;
}

/** Fix the target on the first run; refuse an existing one unless --force. */
export async function claimTarget(step: RestoreStep): Promise<void> {
  const { target } = step.opts;
  if (step.job.target !== null) {
    if (step.job.target !== target) {
      throw new UsageError(`the restore of ${step.job.dataset} goes into ${step.job.target} (set by its first run); run "zbk restore plan ${step.job.dataset} --reset" to start over into another target`, 'TARGET_MISMATCH');
    }
    return;
  }
  await targetPort(step).claim(step);
  step.job.target = target;
  step.save();
}

/**
 * Received streams are what the target's snapshots say. A stream counts as
 * received when its own snapshot or that of any later stream of the chain
 * is on the target: a later snapshot can only be there after the earlier
 * streams were received, so a pruned older snapshot (sanoid on the new
 * pool, or the user) is not fetched and received again.
 */
export async function syncReceived(step: RestoreStep): Promise<void> {
  const ids = await targetPort(step).receivedIds(step);
  const streams = step.job.streams;
  for (const [si, s] of streams.entries()) {
    const has = streams.slice(si).some((x) => ids.has(x.to.guid));
    if (has === s.received) continue;
    s.received = has;
    s.receivedAt = has ? step.now.toISOString() : null;
    for (const v of step.job.volumes.filter((x) => x.streamId === s.streamId)) {
      if (has) {
        v.phase = 'received';
        await removeStaged(step, v);
      } else {
        // The target lost this snapshot and every later one (destroyed or rolled back): fetch the stream again.
        v.phase = 'scheduled';
        step.ctx.log.warn(`${step.target} no longer has @${s.to.name}: its stream will be restored again`);
      }
    }
  }
  step.save();
}

/** True when the target still holds the restored snapshot (a finished restore checks it). */
export async function targetHoldsSnapshot(step: RestoreStep): Promise<boolean> {
  return (await targetPort(step).receivedIds(step)).has(step.job.snapshot.guid);
}

/**
 * Checks and settings for the receive of stream `si`; before a full
 * receive, records that it started.
 */
export async function receiveFlags(step: RestoreStep, si: number): Promise<ReceivePlan> {
  const port = targetPort(step);
  const stream = step.job.streams[si];
  if (stream) {
    const note = receiveRestartNote(stream, step.target, port.restartReason);
    if (note) step.ctx.log.info(note);
    markReceiveStarted(stream, step.ctx.now());
  }
  const plan = await port.prepare(step, si);
  if (si === 0 && step.job.fullReceiveStartedAt === null) {
    step.job.fullReceiveStartedAt = step.ctx.now().toISOString();
    step.job.fullReceiveStartedWallMs = Date.now();
  }
  step.save();
  return plan;
}
