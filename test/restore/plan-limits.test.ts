/**
 * What a restore plan may spend: the free egress allowance comes from
 * `[restore] free_egress_gb` if set, else from the price table (so `[prices]
 * free_egress_gb_month` changes the plan instead of being ignored), and a
 * plan over its --budget is shown but never saved.
 */
import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { loadJob, restorePlan } from '../../src/services/restore/index.js';
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

test('restore plan: a plan over its budget is shown with --dry-run and never saved', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 1, fullFiles: 1, volumeSize: '5MiB' });
  const ctx = { ...fx.context(), log: { info() {}, warn() {} } };
  const shown = await restorePlan(ctx, { dataset: fx.dataset, budgetUSD: 1e-9, dryRun: true });
  assert.equal(shown.withinBudget, false);
  await assert.rejects(restorePlan(ctx, { dataset: fx.dataset, budgetUSD: 1e-9 }), (e: unknown) => e instanceof UsageError && e.code === 'OVER_BUDGET');
  const m = Manifest.open(join(fx.repo.stateDir, 'manifest.db'), { readonly: true });
  try {
    assert.equal(loadJob(m, fx.dataset), null, 'nothing saved for "restore run" to spend');
  } finally {
    m.close();
  }
});
