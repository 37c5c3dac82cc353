/**
 * `[restore] limit` on `restore run` (issue 21 item 1): every byte the
 * restore downloads from the S3 test server passes the run's one limiter
 * (all volumes, all steps, the live receive included), and the restore is
 * identical to the source. Nothing is timed: the limiter's count of granted
 * bytes is compared with the egress the restore recorded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBandwidth } from '../../src/config/bandwidth.js';
import { restorePlan } from '../../src/services/restore/index.js';
import { downloadPacer } from '../../src/services/bandwidth.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture, runToDone } from './helpers.js';

const HOUR = 3_600_000;

test('a restore run under [restore] limit downloads every byte through the one limiter of the run and restores identically', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  // The server's clock is frozen at its start: the schedule reads it (00:00 UTC), the bucket refills by the monotonic clock.
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 2, volumeSize: '5MiB' });
  const base = fx.context();
  const config = { ...base.config, restore: { ...base.config.restore, limit: parseBandwidth('00:00-12:00=4MiB/s, 12:00-24:00=6MiB/s') } };
  const ctx = { ...base, config, log: { info() {}, warn() {} } };
  const target = `${fx.pool.name}/restored`;
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  await runToDone(fx, ctx, target);
  const job = jobOf(fx.repo.stateDir, fx.dataset);
  assert.ok(job.finishedAt);
  const egress = Object.values(job.egressByMonth).reduce((a, b) => a + b, 0);
  const limiter = downloadPacer(ctx);
  assert.ok(limiter, 'a limiter for the configured limit');
  assert.ok(egress > 8 * 1024 * 1024, `the chain was downloaded (${egress} bytes)`);
  assert.equal(limiter.stats.granted, egress, 'every downloaded byte passed the limiter, once');
  assert.ok(limiter.stats.waited > 0, 'and some had to wait for it');
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});
