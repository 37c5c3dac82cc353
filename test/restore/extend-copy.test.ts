/**
 * A run that finds the restored copies hours from expiry (the machine was
 * off) extends them before downloading, so a download that outlasts the
 * old expiry still finishes without thawing (and paying for) them again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture, runToDone } from './helpers.js';

const HOUR = 3_600_000;

test('copies about to expire are extended before their download, not thawed again', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB' });
  const { server, repo } = fx;
  const ctx = fx.context();
  const target = `${fx.pool.name}/restored`;
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  let r = await restoreRun(ctx, { dataset: fx.dataset, target });
  const volumes = jobOf(repo.stateDir, fx.dataset).volumes;
  assert.equal(r.requested.length, volumes.length, 'every volume was thawed');

  // The copies are ready; the next run comes 6 hours before the first of them expires.
  server.clock.advance(7 * HOUR);
  const expiries = await Promise.all(volumes.map(async (v) => (await ctx.store.head(v.key)).restore));
  const first = Math.min(...expiries.map((e) => (e.state === 'restored' ? e.expiry.getTime() : Infinity)));
  assert.ok(Number.isFinite(first), 'the copies are restored');
  server.clock.set(new Date(first - 6 * HOUR));

  // A slow download: by its first progress report, half a day has passed and the old expiry with it.
  let slowed = false;
  r = await restoreRun(ctx, {
    dataset: fx.dataset,
    target,
    onProgress: () => {
      if (!slowed) server.clock.advance(12 * HOUR);
      slowed = true;
    },
  });
  assert.ok(slowed);
  await runToDone(fx, ctx, target);

  const after = jobOf(repo.stateDir, fx.dataset).volumes;
  assert.deepEqual(after.filter((v) => v.expiredCopies > 0).map((v) => v.key), [], 'no copy expired before its download');
  assert.equal(server.accounting.restoreRequestsByTier.Bulk, 2 * volumes.length, 'one thaw and one extension per volume');
  assert.deepEqual(await hashTree(await fx.pool.zfs.mount(target)), await hashTree(fx.sourceMount));
});
