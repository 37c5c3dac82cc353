/**
 * The dataset a restore receives into: fixed by the restore's first run (an
 * existing one only with --force), read back for the snapshots it already
 * has (by guid, so a crash between `zfs receive` and the job's save is
 * harmless), and checked before each `zfs receive` so that nothing this
 * restore did not put there is overwritten or destroyed without --force.
 */
import { UsageError } from '../../errors.js';
import { markReceiveStarted, receiveRestartNote } from './receive-restart.js';
import { removeStaged } from './staging.js';
import type { RestoreStep } from './step.js';

/** Fix the target on the first run; refuse an existing dataset unless --force. */
export async function claimTarget(step: RestoreStep): Promise<void> {
  const { target, force } = step.opts;
  if (step.job.target !== null) {
    if (step.job.target !== target) {
      throw new UsageError(`the restore of ${step.job.dataset} goes into ${step.job.target} (set by its first run); run "zbk restore plan ${step.job.dataset} --reset" to start over into another target`, 'TARGET_MISMATCH');
    }
    return;
  }
  if (await step.ctx.zfs.exists(target)) {
    if (!force) throw new UsageError(`target ${target} already exists: choose a new dataset, or pass --force to overwrite it`, 'TARGET_EXISTS');
    step.job.force = true;
    step.job.forcedTargetGuid = await datasetGuid(step, target);
  }
  step.job.target = target;
  step.save();
}

/**
 * Received streams are what the target's snapshot guids say. A stream
 * counts as received when its own snapshot or that of any later stream of
 * the chain is on the target: a later snapshot can only be there after the
 * earlier streams were received, so a pruned older snapshot (sanoid on the
 * new pool, or the user) is not fetched and received again.
 */
export async function syncReceived(step: RestoreStep): Promise<void> {
  const zfs = step.ctx.zfs;
  const guids = (await zfs.exists(step.target)) ? new Set((await zfs.listSnapshots(step.target)).map((s) => s.guid.toString())) : new Set<string>();
  const streams = step.job.streams;
  for (const [si, s] of streams.entries()) {
    const has = streams.slice(si).some((x) => guids.has(x.to.guid));
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

/** The `guid` property of `dataset` (null when zfs does not report one). */
async function datasetGuid(step: RestoreStep, dataset: string): Promise<string | null> {
  const g = (await step.ctx.zfs.getProperties(dataset, ['guid'])).get('guid');
  return g && g !== '-' ? g : null;
}

/**
 * Without --force in this run, the full receive may overwrite an existing
 * target only when it is what an earlier run was allowed to overwrite:
 * the very dataset --force was given for (same guid), or what our own
 * interrupted full receive left behind (no snapshots, created after that
 * receive started and before the interrupted run's last save, which it
 * makes while it feeds the receive; zfs-fuse discards such a leftover only
 * after a while, so it is first given 15 s to go). Anything else put there since (the
 * user's own dataset at that name) is refused, never rolled over.
 */
async function mayOverwriteTarget(step: RestoreStep): Promise<boolean> {
  const zfs = step.ctx.zfs;
  if (step.job.force) {
    const want = step.job.forcedTargetGuid;
    if (want === undefined || (want !== null && want === (await datasetGuid(step, step.target)))) return true;
  }
  const started = step.job.fullReceiveStartedAt;
  if (started === null) return false;
  for (let i = 0; i < 75 && (await zfs.exists(step.target)); i++) await new Promise((r) => setTimeout(r, 200));
  if (!(await zfs.exists(step.target))) return true;
  if ((await zfs.listSnapshots(step.target)).length > 0) return false;
  const wall = step.job.fullReceiveStartedWallMs;
  if (wall === undefined) return true; // a job saved before the time was recorded
  const creation = Number((await zfs.getProperties(step.target, ['creation'])).get('creation'));
  if (!Number.isFinite(creation) || creation * 1000 < wall - 2000) return false;
  // zfs's creation time has one-second resolution; the dataset appears once the stream's first record is read.
  const lastSave = step.savedBeforeThisRun;
  return lastSave === undefined || creation * 1000 <= lastSave + 5000;
}

/**
 * `zfs receive` flags for stream `si`; before a full receive, records that it
 * started. Every receive leaves the target unmounted (`-u`), so nothing
 * changes it between two runs (it is mounted when the restore is done).
 */
export async function receiveFlags(step: RestoreStep, si: number): Promise<{ force: boolean; unmounted: true }> {
  const stream = step.job.streams[si];
  if (stream) {
    const note = receiveRestartNote(stream, step.target);
    if (note) step.ctx.log.info(note);
    markReceiveStarted(stream, step.ctx.now());
  }
  if (si !== 0) {
    // Incrementals roll the target back (-F) only with --force: whatever changed it since
    // the last receive is then lost, and OpenZFS also destroys its snapshots newer than the
    // base, so snapshots somebody else took there (sanoid on the new pool) are refused first.
    const chain = new Set(step.job.streams.map((x) => x.to.guid));
    const snaps = await step.ctx.zfs.listSnapshots(step.target);
    const ours = snaps.filter((x) => chain.has(x.guid.toString()));
    const newest = ours.reduce((m, x) => (x.createtxg > m ? x.createtxg : m), -1n);
    const foreign = snaps.filter((x) => !chain.has(x.guid.toString()) && x.createtxg > newest);
    if (foreign.length > 0 && !step.opts.force) {
      const names = foreign.map((x) => `@${x.shortName}`).join(', ');
      throw new UsageError(
        `${step.target} has snapshots this restore did not receive (${names}); its next incremental receive (zfs receive -F) would destroy them: destroy or move them yourself and disable snapshotting of the target until the restore is done, or pass --force`,
        'TARGET_CHANGED',
      );
    }
    return { force: step.opts.force === true, unmounted: true };
  }
  const exists = await step.ctx.zfs.exists(step.target);
  const force = exists && (step.opts.force === true || (await mayOverwriteTarget(step)));
  if (exists && !force) throw new UsageError(`target ${step.target} already exists and is not what this restore may overwrite: pass --force to overwrite it`, 'TARGET_EXISTS');
  // A full receive -F replaces the target whole: unmount it first. zfs-fuse
  // failed such a receive over a mounted target now and then with "I/O error".
  if (force) await step.ctx.zfs.unmount(step.target).catch(() => undefined);
  if (step.job.fullReceiveStartedAt === null) {
    step.job.fullReceiveStartedAt = step.ctx.now().toISOString();
    step.job.fullReceiveStartedWallMs = Date.now();
  }
  step.save();
  return { force, unmounted: true };
}
