/**
 * The free egress allowance of a restore comes from `[restore]
 * free_egress_gb` if set, else from the price table, so `[prices]
 * free_egress_gb_month` (an allowance used up elsewhere, a changed AWS
 * offer) changes the plan instead of being ignored.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { test } from 'node:test';
import { restorePlan } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { pushedFixture } from './helpers.js';

test('restore plan: the allowance of [prices] free_egress_gb_month is the one planned with', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 1, fullFiles: 1, volumeSize: '5MiB' });
  const ctx = () => ({ ...fx.context(), log: { info() {}, warn() {} } });
  const roomy = await restorePlan(ctx(), { dataset: fx.dataset, reserveGB: 0, dryRun: true });
  assert.equal(roomy.months.length, 1, 'the default 100 GB takes everything in one month');
  appendFileSync(fx.repo.configPath, '\n[prices]\nfree_egress_gb_month = 0.0056\n');
  const tight = await restorePlan(ctx(), { dataset: fx.dataset, reserveGB: 0, dryRun: true });
  assert.ok(tight.months.length >= 2, `planned over ${tight.months.length} month(s) with the price table's 5.6 MB`);
  assert.ok(Math.abs(tight.monthlyCapacityGB - 0.0056) < 1e-12, String(tight.monthlyCapacityGB));
});
