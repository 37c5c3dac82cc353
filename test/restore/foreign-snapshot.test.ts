/**
 * The target between two monthly runs is left unmounted and never rolled
 * back without --force: a snapshot somebody else took there (sanoid on the
 * new pool), which `zfs receive -F` would destroy on OpenZFS, stops the run
 * and is named; a target mounted and read (or written) meanwhile stops the
 * next incremental with a clear error, and --force rolls it back.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { restorePlan } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { pushedFixture, runToDone } from './helpers.js';

const HOUR = 3_600_000;

/** Pushed chain, and a restore of it planned with a tiny allowance: the full and the first incremental in one month, the rest later. */
async function planOverMonths(t: TestContext) {
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB' });
  const ctx = { ...fx.context(), log: { info() {}, warn() {} } };
  const plan = await restorePlan(ctx, { dataset: fx.dataset, freeEgressGB: 0.0056, reserveGB: 0 });
  assert.ok(plan.months.length >= 2, `plan spans ${plan.months.length} month(s)`);
  return { fx, ctx, target: `${fx.pool.name}/restored` };
}

test('a snapshot taken on the target mid-restore stops the next incremental receive, and is kept', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const { fx, target, ctx } = await planOverMonths(t);

  let taken = false;
  await assert.rejects(
    runToDone(fx, ctx, target, async (job) => {
      if (taken || !job.streams[1]!.received) return;
      assert.ok(job.streams.some((s) => !s.received), 'the restore is still unfinished');
      await fx.pool.zfs.snapshot(`${target}@mine`);
      taken = true;
    }),
    (e: unknown) => e instanceof UsageError && e.code === 'TARGET_CHANGED' && e.message.includes('@mine'),
  );
  assert.ok(taken, '@mine was taken while incrementals were still to come');
  assert.ok((await fx.pool.zfs.listSnapshots(target)).some((s) => s.shortName === 'mine'), '@mine is still there');

  await fx.pool.zfs.destroy(`${target}@mine`);
  await runToDone(fx, ctx, target);
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});

test('a target changed between runs (mounted and read) is not rolled back without --force', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const { fx, target, ctx } = await planOverMonths(t);

  let touched = false;
  await assert.rejects(
    runToDone(fx, ctx, target, async (job) => {
      if (touched || !job.streams[1]!.received) return;
      assert.equal((await fx.pool.zfs.getProperties(target, ['mounted'])).get('mounted'), 'no', 'left unmounted between receives');
      // The user looks at what is there so far.
      await hashTree(await fx.pool.zfs.mount(target));
      await fx.pool.zfs.unmount(target);
      touched = true;
    }),
    (e: unknown) => e instanceof UsageError && e.code === 'TARGET_MODIFIED' && e.message.includes('--force'),
  );
  assert.ok(touched);
  // With --force the changes (atime) are rolled back and the restore completes.
  await runToDone(fx, ctx, target, undefined, { force: true });
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});
