/**
 * Snapshots destroyed on the target by a pruner (sanoid on the new pool) or
 * the user: a stream whose snapshot is gone but a later one of the chain is
 * on the target is still received (never thawed, downloaded or received
 * again), and a finished restore stays done whatever happens to the target.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceContext } from '../../src/services/context.js';
import { restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture, runToDone, type RestoreFixture } from './helpers.js';

const HOUR = 3_600_000;

/** The fixture's context with its warnings recorded. */
function recording(fx: RestoreFixture): { ctx: ServiceContext; warnings: string[] } {
  const warnings: string[] = [];
  return { ctx: { ...fx.context(), log: { info() {}, warn: (m: string) => warnings.push(m) } }, warnings };
}

test('an older snapshot pruned from the target mid-restore is not restored again and the restore finishes', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB' });
  const target = `${fx.pool.name}/restored`;
  const { ctx, warnings } = recording(fx);
  // Tiny allowance: the full and the first incremental in one month, the rest later.
  const plan = await restorePlan(ctx, { dataset: fx.dataset, freeEgressGB: 0.0056, reserveGB: 0 });
  assert.ok(plan.months.length >= 2, `plan spans ${plan.months.length} month(s)`);

  let pruned = false;
  await runToDone(fx, ctx, target, async (job) => {
    if (pruned || !job.streams[0]!.received || !job.streams[1]!.received) return;
    assert.ok(job.streams.some((s) => !s.received), 'the restore is still unfinished when @s1 is pruned');
    // sanoid's autoprune on the new pool (or the user) destroys the oldest received snapshot.
    await fx.pool.zfs.destroy(`${target}@s1`);
    pruned = true;
  });
  assert.ok(pruned, '@s1 was pruned while later streams were still to come');

  const job = jobOf(fx.repo.stateDir, fx.dataset);
  const full = job.volumes.filter((v) => v.streamIndex === 0);
  assert.ok(
    full.every((v) => v.restoreRequests === 1 && v.expiredCopies === 0 && v.downloadedBytes === v.storedSize),
    `the full stream was thawed and downloaded once: ${JSON.stringify(full.map((v) => [v.restoreRequests, v.expiredCopies, v.downloadedBytes, v.storedSize]))}`,
  );
  assert.ok(job.streams.every((s) => s.received));
  assert.deepEqual(warnings.filter((w) => /no longer has/.test(w)), []);
  const snaps = (await fx.pool.zfs.listSnapshots(target)).map((s) => s.name);
  assert.ok(!snaps.some((n) => n.endsWith('@s1')) && snaps.some((n) => n.endsWith('@s4')), `target snapshots: ${snaps.join(', ')}`);
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});

test('a finished restore stays done after snapshots are destroyed on the target: nothing is requested or downloaded again', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB' });
  const target = `${fx.pool.name}/restored`;
  const { ctx, warnings } = recording(fx);
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  await runToDone(fx, ctx, target);
  const finishedAt = jobOf(fx.repo.stateDir, fx.dataset).finishedAt;
  assert.ok(finishedAt);

  // The daily timer was left on; meanwhile the newest and the oldest snapshot are destroyed on the target.
  await fx.pool.zfs.destroy(`${target}@s4`);
  await fx.pool.zfs.destroy(`${target}@s1`);
  fx.server.clock.advance(30 * 24 * HOUR);
  const requests = fx.server.accounting.requests.RestoreObject ?? 0;
  const bytesOut = fx.server.accounting.bytesOut;
  for (let i = 0; i < 2; i++) {
    const r = await restoreRun(ctx, { dataset: fx.dataset, target });
    assert.equal(r.done, true, `run ${i + 1} after the end reports done (next: ${r.next.what})`);
    assert.deepEqual([r.requested, r.downloaded, r.received, r.bytesDownloaded], [[], [], [], 0]);
  }
  assert.equal(fx.server.accounting.requests.RestoreObject ?? 0, requests, 'no restore requested again');
  assert.ok(fx.server.accounting.bytesOut - bytesOut < 8192, 'only the key file was read');
  const job = jobOf(fx.repo.stateDir, fx.dataset);
  assert.equal(job.finishedAt, finishedAt);
  assert.ok(job.volumes.every((v) => v.phase === 'received') && job.streams.every((s) => s.received), 'nothing was rescheduled');
  assert.ok(warnings.some((w) => w.includes('no longer has @s4') && w.includes('zbk restore plan')), `warnings: ${warnings.join(' | ')}`);
});
