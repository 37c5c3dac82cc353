/**
 * A download saves the job (and its egress count) at most once a second or
 * every 256 MiB, not after every part (issue 22 item 4): a download that
 * fails part way must still have counted, and saved, every byte it kept on
 * disk, or the next run would think the free egress allowance less used
 * than it is.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { jobOf, pushedFixture } from './helpers.js';

const HOUR = 3_600_000;

function bytesStaged(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  }
  return n;
}

test('a download that fails part way has saved the egress of every part it kept', { timeout: 300_000 }, async (t) => {
  if (!requireZfs(t)) return;
  // One 20 MiB volume of four 5 MiB parts for the full stream; a frozen clock, so nothing here is timed.
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: HOUR, fullFiles: 4, volumeSize: '20MiB' });
  const ctx = { ...fx.context(), log: { info() {}, warn() {} } };
  const target = `${fx.pool.name}/restored`;
  await restorePlan(ctx, { dataset: fx.dataset, asap: true });
  const first = await restoreRun(ctx, { dataset: fx.dataset, target });
  assert.equal(first.bytesDownloaded, 0, 'the first run only asks for thaws');
  fx.server.clock.advance(2 * HOUR);

  // Two part GETs pass, then the store refuses: the run fails inside the first volume, well within a second.
  fx.server.addFault({ operation: 'GetObject', sequence: [null, null, 'access-denied', 'access-denied', 'access-denied', 'access-denied'] });
  await assert.rejects(restoreRun(ctx, { dataset: fx.dataset, target }));
  fx.server.clearFaults();

  const job = jobOf(fx.repo.stateDir, fx.dataset);
  const counted = Object.values(job.egressByMonth).reduce((a, b) => a + b, 0);
  const staged = bytesStaged(ctx.config.restore.stagingDir);
  assert.ok(staged >= 5 * 1024 * 1024, `at least one part was kept on disk (${staged} bytes)`);
  assert.ok(counted >= staged, `the saved job counts ${counted} bytes of egress for ${staged} bytes on disk`);
  assert.equal(counted, job.volumes.reduce((a, v) => a + v.downloadedBytes, 0), 'the month totals and the volumes agree');
});
