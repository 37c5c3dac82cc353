/**
 * Choosing another target: a finished restore (a yearly drill, say, carried
 * into a rebuilt manifest by its mirror) never pins the target of the next
 * one, and an unfinished one can be started over with `restore plan --reset`,
 * as the TARGET_MISMATCH error says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture, runToDone } from './helpers.js';

const HOUR = 3_600_000;

test('after a finished drill a new plan restores into another target; an unfinished one starts over with --reset', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB' });
  const ctx = { ...fx.context(), log: { info() {}, warn() {} } };
  const drill = `${fx.pool.name}/drill`;
  const real = `${fx.pool.name}/restored`;
  const other = `${fx.pool.name}/other`;

  // The drill, finished.
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  await runToDone(fx, ctx, drill);
  const drillJob = jobOf(fx.repo.stateDir, fx.dataset);
  assert.ok(drillJob.finishedAt);
  const drillEgress = Object.values(drillJob.egressByMonth).reduce((a, b) => a + b, 0);
  assert.ok(drillEgress > 0);

  // Disaster: a new plan, into the real target. Nothing of the drill's target or progress is kept.
  const plan = await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  assert.equal(plan.keptProgress, false);
  const fresh = jobOf(fx.repo.stateDir, fx.dataset);
  assert.equal(fresh.target, null);
  assert.equal(fresh.finishedAt, null);
  assert.ok(fresh.volumes.every((v) => v.phase !== 'received') && fresh.streams.every((s) => !s.received));
  assert.deepEqual(fresh.egressByMonth, drillJob.egressByMonth, 'egress history is kept (the allowance is per account)');
  // Months later (the drill's thawed copies have expired), one run starts it into the real target.
  fx.server.clock.advance(60 * 24 * HOUR);
  const first = await restoreRun(ctx, { dataset: fx.dataset, target: real });
  assert.equal(first.done, false, 'the restore is under way (waiting for its thaw)');
  assert.equal(jobOf(fx.repo.stateDir, fx.dataset).target, real);

  // Unfinished: another target is refused, and the error names the way out.
  await assert.rejects(restoreRun(ctx, { dataset: fx.dataset, target: other }), (e: unknown) => e instanceof UsageError && e.code === 'TARGET_MISMATCH' && /--reset/.test(e.message));
  // A plain re-plan keeps the progress and the target...
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  assert.equal(jobOf(fx.repo.stateDir, fx.dataset).target, real);
  // ...--reset drops them.
  const reset = await restorePlan(ctx, { dataset: fx.dataset, asap: true, reset: true });
  assert.equal(reset.keptProgress, false);
  assert.equal(jobOf(fx.repo.stateDir, fx.dataset).target, null);
  await runToDone(fx, ctx, other);
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(other)), await hashTree(fx.sourceMount));
});
