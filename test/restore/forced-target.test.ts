/**
 * `--force` on the first run of a restore into an existing dataset carries
 * over to the later run that receives the full stream, for that dataset
 * only: a different dataset put at the target name meanwhile is refused,
 * its files kept, until --force is given again.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { Manifest } from '../../src/manifest/manifest.js';
import { saveJob } from '../../src/services/restore/job.js';
import { loadJob, restorePlan, restoreRun } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture } from './helpers.js';

const HOUR = 3_600_000;

test('a carried-over --force overwrites only the dataset it was given for', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB', names: ['photos', 'docs'] });
  const { pool, server } = fx;
  const [photos, docs] = fx.datasets as [string, string];
  const ctx = fx.context();
  const targets = { [photos]: `${pool.name}/old-photos`, [docs]: `${pool.name}/old-docs` };
  for (const ds of fx.datasets) {
    await pool.zfs.createDataset(targets[ds]!);
    await restorePlan(ctx, { dataset: ds, asap: true });
    // First run: the target exists, --force given; it only asks for the thaws.
    const r = await restoreRun(ctx, { dataset: ds, target: targets[ds]!, force: true });
    assert.ok(r.requested.length > 0 && r.received.length === 0);
  }

  // Someone puts a new dataset with their own file at the docs target name meanwhile.
  // zfs-fuse may still be busy with the fresh mount: retry a while.
  for (let i = 0; ; i++) {
    try {
      await pool.zfs.unmount(targets[docs]!).catch(() => undefined);
      await pool.zfs.destroy(targets[docs]!, { recursive: true });
      break;
    } catch (err) {
      if (i === 50) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await pool.zfs.createDataset(targets[docs]!);
  const mine = join(await pool.zfs.mount(targets[docs]!), 'mine.txt');
  writeFileSync(mine, 'not a backup\n');
  server.clock.advance(7 * HOUR);

  // photos: the very dataset --force was given for is overwritten without --force.
  const p = await restoreRun(ctx, { dataset: photos, target: targets[photos]! });
  assert.ok(p.done, `photos: ${p.next.what}`);
  assert.deepEqual(await hashTree(await pool.zfs.mount(targets[photos]!)), await hashTree((await pool.zfs.mountpoint(photos))!));

  // docs: refused, the new dataset untouched.
  await assert.rejects(restoreRun(ctx, { dataset: docs, target: targets[docs]! }), (e: unknown) => e instanceof UsageError && e.code === 'TARGET_EXISTS' && e.message.includes('--force'));
  assert.equal(readFileSync(join(await pool.zfs.mount(targets[docs]!), 'mine.txt'), 'utf8'), 'not a backup\n');

  // --force again: overwritten, restored.
  const d = await restoreRun(ctx, { dataset: docs, target: targets[docs]!, force: true });
  assert.ok(d.done, `docs: ${d.next.what}`);
  assert.deepEqual(await hashTree(await pool.zfs.mount(targets[docs]!)), await hashTree((await pool.zfs.mountpoint(docs))!));

  // A new restore whose full receive was interrupted a while ago (as its run recorded it); since then the
  // user made a dataset of their own at the target: not a leftover of that receive, so it is refused.
  const again = `${pool.name}/photos-again`;
  await restorePlan(ctx, { dataset: photos, asap: true });
  assert.equal(jobOf(fx.repo.stateDir, photos).target, null);
  const m = Manifest.open(join(fx.repo.stateDir, 'manifest.db'));
  try {
    const job = loadJob(m, photos)!;
    job.target = again;
    job.fullReceiveStartedAt = server.clock.now().toISOString();
    job.fullReceiveStartedWallMs = Date.now() - 60_000;
    job.savedWallMs = Date.now() - 30_000;
    saveJob(m, job);
  } finally {
    m.close();
  }
  await pool.zfs.createDataset(again);
  writeFileSync(join(await pool.zfs.mount(again), 'mine.txt'), 'mine\n');
  server.clock.advance(7 * HOUR);
  await assert.rejects(restoreRun(ctx, { dataset: photos, target: again }), (e: unknown) => e instanceof UsageError && e.code === 'TARGET_EXISTS');
  assert.equal(readFileSync(join(await pool.zfs.mount(again), 'mine.txt'), 'utf8'), 'mine\n');
});
