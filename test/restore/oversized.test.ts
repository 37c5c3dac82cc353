/**
 * A volume larger than a month's usable allowance gets a month of its own;
 * when its download is interrupted, the next run of that month goes on with
 * it instead of counting its own first half against it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture, runToDone } from './helpers.js';

const HOUR = 3_600_000;

test('an oversized volume whose download was interrupted is resumed in its month', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 5, volumeSize: '20MiB' });
  const ctx = fx.context();
  const target = `${fx.pool.name}/restored`;
  // 2 MB a month: the full stream's 21 MB volume (four 5 MiB parts) is alone in its month, and over the allowance.
  const plan = await restorePlan(ctx, { dataset: fx.dataset, freeEgressGB: 0.002, reserveGB: 0 });
  assert.ok(plan.warnings.some((w) => /exceeds the usable allowance/.test(w)), plan.warnings.join('; '));
  await restoreRun(ctx, { dataset: fx.dataset, target });
  fx.server.clock.advance(7 * HOUR);

  // Interrupted after its first part.
  const ac = new AbortController();
  const big = jobOf(fx.repo.stateDir, fx.dataset).volumes[0]!;
  await assert.rejects(restoreRun(ctx, { dataset: fx.dataset, target, signal: ac.signal, onProgress: () => ac.abort() }));
  const month = jobOf(fx.repo.stateDir, fx.dataset).volumes[0]!;
  assert.equal(month.key, big.key);
  assert.ok(month.downloadedBytes > 0 && month.downloadedBytes < month.storedSize, `fetched ${month.downloadedBytes} of ${month.storedSize}`);

  fx.server.clock.advance(HOUR);
  const r = await restoreRun(ctx, { dataset: fx.dataset, target });
  assert.ok(r.downloaded.includes(big.key), `the same month's next run goes on with it (next: ${r.next.what})`);
  await runToDone(fx, ctx, target);
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});
