/**
 * A restore into a ZFS dataset: fixed by the restore's first run (an
 * existing one only with --force), read back for the snapshots it already
 * has (by guid, so a crash between `zfs receive` and the job's save is
 * harmless), and checked before each `zfs receive` so that nothing this
 * restore did not put there is overwritten or destroyed without --force.
 */
import type { Readable } from 'node:stream';
import { IntegrityError, UsageError } from '../../errors.js';
import { ZfsError } from '../../zfs/errors.js';
import type { JobStream } from './job.js';
import { mountAdvice } from './receive-restart.js';
import type { RestoreStep } from './step.js';
import type { ReceivePlan, RestoreTargetPort } from './target-port.js';

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

export const zfsRestoreTarget: RestoreTargetPort = {
  restartReason: 'a zfs resume token could only be completed by a zfs send -t on the source pool',

  async claim(step) {
    const { target, force } = step.opts;
    if (await step.ctx.zfs.exists(target)) {
      if (!force) throw new UsageError(`target ${target} already exists: choose a new dataset, or pass --force to overwrite it`, 'TARGET_EXISTS');
      step.job.force = true;
      step.job.forcedTargetGuid = await datasetGuid(step, target);
    }
  },

  async receivedIds(step) {
    const zfs = step.ctx.zfs;
    return (await zfs.exists(step.target)) ? new Set((await zfs.listSnapshots(step.target)).map((s) => s.guid.toString())) : new Set<string>();
  },

  /**
   * Every receive leaves the target unmounted (`-u`), so nothing changes it
   * between two runs (it is mounted when the restore is done).
   */
  async prepare(step, si): Promise<ReceivePlan> {
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
      return { force: step.opts.force === true };
    }
    const exists = await step.ctx.zfs.exists(step.target);
    const force = exists && (step.opts.force === true || (await mayOverwriteTarget(step)));
    if (exists && !force) throw new UsageError(`target ${step.target} already exists and is not what this restore may overwrite: pass --force to overwrite it`, 'TARGET_EXISTS');
    // A full receive -F replaces the target whole: unmount it first. zfs-fuse
    // failed such a receive over a mounted target now and then with "I/O error".
    if (force) await step.ctx.zfs.unmount(step.target).catch(() => undefined);
    return { force };
  },

  async receive(step, _si, input: Readable, plan, onWritten) {
    await step.ctx.zfs.receive(step.target, input, { force: plan.force, unmounted: true, ...(onWritten ? { onWritten } : {}) });
  },

  /** zfs's refusal of an incremental because the target changed since the last receive (mounted and read, or written) as a clear error; others as they are. */
  explainFailure(step, err, si) {
    if (si === 0 || !(err instanceof ZfsError) || !/modified\s+since most recent snapshot/i.test(err.stderrTail)) return err;
    return new UsageError(
      `${step.target} was changed since its last receive (mounted and read, or written): unmount it and leave it alone until the restore is done (it is mounted at the end), or pass --force to roll those changes back`,
      'TARGET_MODIFIED',
    );
  },

  async confirm(step, s: JobStream) {
    const got = await step.ctx.zfs.getSnapshot(`${step.target}@${s.to.name}`);
    if (got.guid.toString() !== s.to.guid) {
      throw new IntegrityError(`${step.target}@${s.to.name} has guid ${got.guid}, the pushed snapshot ${s.to.guid}`, 'RECEIVE_MISMATCH');
    }
  },

  async finish(step) {
    // zfs-fuse does not always mount a received dataset by itself.
    await step.ctx.zfs.mount(step.target).catch(async (err: unknown) => step.ctx.log.warn(await mountAdvice(step.ctx.zfs, step.target, err)));
  },
};
