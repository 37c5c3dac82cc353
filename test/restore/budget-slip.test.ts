/**
 * A restore planned within a budget whose timer missed a whole month: the
 * next month downloads no more than the plan's heaviest month (the egress
 * the budget pays for), instead of two months' worth at once, and the
 * restore still ends with the source's files.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restorePlan } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { pushedFixture, runToDone } from './helpers.js';

/** Usable free egress per month: less than the full stream (≈ 4.2 MB), so every month pays for some. */
const FREE_GB = 0.002;

test('a budget restore that missed a month downloads no more in one month than its plan does', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * 3_600_000, fullFiles: 1, volumeSize: '5MiB' });
  const ctx = fx.context();
  const opts = { dataset: fx.dataset, freeEgressGB: FREE_GB, reserveGB: 0 };
  // A budget between "everything in one month" and the free-allowance schedule: the planner picks a schedule in between.
  const asap = await restorePlan(ctx, { ...opts, asap: true, dryRun: true });
  const free = await restorePlan(ctx, { ...opts, dryRun: true });
  assert.ok(free.totalCost > asap.totalCost || free.months.length > 2, 'the fixture needs a free schedule of several months');
  const plan = await restorePlan(ctx, { ...opts, budgetUSD: (asap.totalCost + free.totalCost) / 2 });
  assert.equal(plan.mode, 'budget');
  assert.ok(plan.months.length >= 2, `planned over ${plan.months.length} month(s)`);
  const heaviest = Math.max(FREE_GB * 1e9, ...plan.months.map((m) => m.bytes));

  // The timer did not run in the plan's first month at all.
  const [y, mo] = plan.months[0]!.month.split('-').map(Number) as [number, number];
  fx.server.clock.set(new Date(Date.UTC(y, mo, 3)));
  const target = `${fx.pool.name}/restored`;
  await runToDone(fx, ctx, target);

  // Every GET counts, so the key file read by each run comes on top of the volumes.
  const metadata = 64 * 1024;
  for (const [m, b] of Object.entries(fx.server.accounting.bytesOutByMonth)) {
    assert.ok(b <= heaviest + metadata, `${m}: ${b} bytes out, the plan's heaviest month is ${heaviest}`);
  }
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});
