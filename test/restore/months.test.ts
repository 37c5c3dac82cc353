/**
 * The restore end to end on the S3 test server with Deep Archive semantics,
 * through the service API with the server's clock injected: a plan that
 * spans at least three months under a tiny allowance, `restore run` called
 * again and again while the clock moves through the months, a staged file
 * corrupted on disk (detected before zfs receive, kept aside, fetched again
 * after its restored copy expired and was requested again), and finally the
 * received files equal the source and every month's egress is within the
 * allowance.
 */
import assert from 'node:assert/strict';
import { existsSync, openSync, readSync, writeSync, closeSync } from 'node:fs';
import { test } from 'node:test';
import { IntegrityError, UsageError, WrongPassphraseError } from '../../src/errors.js';
import { restorePlan, restoreRun, restoreStatus, stagedPath } from '../../src/services/restore/index.js';
import { createContext } from '../../src/services/context.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture } from './helpers.js';

const HOUR = 3_600_000;
/** Usable egress per month: one 5 MiB volume and a bit. */
const FREE_GB = 0.0065;

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, offset);
    b[0] = b[0]! ^ 0xff;
    writeSync(fd, b, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

test('restore over several months within the allowance; corrupted staged file and expired copy recovered', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 3, volumeSize: '5MiB' });
  const { server, dataset, repo } = fx;
  const target = `${fx.pool.name}/restored`;
  const ctx = fx.context();

  // A wrong passphrase is refused before any restore request.
  const wrong = createContext(ctx.config, { describe: () => 'test', get: async () => 'not the passphrase' }, { store: ctx.store, now: ctx.now });
  await assert.rejects(restoreRun(wrong, { dataset, target }), WrongPassphraseError);
  assert.equal(server.accounting.requests.RestoreObject ?? 0, 0);

  const plan = await restorePlan(ctx, { dataset, freeEgressGB: FREE_GB, reserveGB: 0 });
  assert.equal(plan.chain.length, 4, 'full + three incrementals');
  assert.deepEqual(plan.chain.map((c) => c.kind), ['full', 'incremental', 'incremental', 'incremental']);
  assert.ok(plan.months.length >= 3, `plan spans ${plan.months.length} month(s)`);
  assert.ok(plan.stagingBytes > 0 && plan.totalCost > 0);
  const volumes = plan.months.reduce((a, m) => a + m.volumes.length, 0);
  const capBytes = FREE_GB * 1e9;

  // An existing target is refused without --force.
  await fx.pool.zfs.createDataset(`${fx.pool.name}/taken`);
  await assert.rejects(restoreRun(ctx, { dataset, target: `${fx.pool.name}/taken` }), (e: unknown) => e instanceof UsageError && e.code === 'TARGET_EXISTS');

  let corrupted = false;
  let integrityStops = 0;
  let done = false;
  for (let i = 0; i < 300 && !done; i++) {
    let r;
    try {
      r = await restoreRun(ctx, { dataset, target });
    } catch (err) {
      assert.ok(err instanceof IntegrityError, `unexpected ${String(err)}`);
      assert.match(err.message, /data\/[0-9a-f]{32}\/\d{6}\.zbkv/, 'the damaged object is named');
      integrityStops++;
      continue;
    }
    done = r.done;
    if (done) break;
    // Once some volumes of the (multi-volume) full stream are staged, damage one on disk.
    const job = jobOf(repo.stateDir, dataset);
    if (!corrupted) {
      const staged = job.volumes.find((v) => v.streamIndex === 0 && v.phase === 'staged');
      const full = job.volumes.filter((v) => v.streamIndex === 0);
      if (staged && full.some((v) => v.phase !== 'staged')) {
        flipByte(stagedPath(ctx.config.restore.stagingDir, dataset, staged), 1000);
        corrupted = true;
      }
    }
    if (r.next.kind === 'wait-until') server.clock.set(new Date(Math.max(Date.parse(r.next.at!), server.clock.nowMs() + 1)));
    else server.clock.advance(6 * HOUR);
  }
  if (!done) { const j = jobOf(repo.stateDir, dataset); console.log(JSON.stringify({ now: server.clock.now(), next: j.next, vols: j.volumes.map((v) => [v.month, v.phase, v.requestedAt, v.restoreRequests, v.lastError]), egress: j.egressByMonth, months: j.plan.months.map((m) => [m.month, m.requestAt, m.volumes.length]) })); }
  assert.ok(done, 'the restore finished');
  assert.ok(corrupted, 'a staged file was corrupted during the test');
  assert.equal(integrityStops, 1, 'the corrupted staged file stopped exactly one run');

  // Files equal the source's last snapshot.
  const dst = await hashTree(await fx.pool.zfs.mount(target));
  assert.deepEqual(dst, await hashTree(fx.sourceMount));

  // Egress per calendar month within the allowance, over at least three months.
  const months = Object.entries(server.accounting.bytesOutByMonth).filter(([, b]) => b > 0);
  assert.ok(months.length >= 3, `downloads spread over ${months.length} month(s)`);
  for (const [m, b] of months) assert.ok(b <= capBytes, `${m}: ${b} bytes out > allowance ${capBytes}`);

  const job = jobOf(repo.stateDir, dataset);
  const stored = job.volumes.reduce((a, v) => a + v.storedSize, 0);
  const bad = job.volumes.filter((v) => v.expiredCopies > 0);
  assert.equal(bad.length, 1, 'exactly the corrupted volume needed a new restore after its copy expired');
  assert.equal(job.volumes.reduce((a, v) => a + v.restoreRequests, 0), volumes + 1, 'no restore requested twice except the expired copy');
  assert.equal(server.accounting.restoreRequestsByTier.Bulk, volumes + 1);
  assert.ok(existsSync(`${stagedPath(ctx.config.restore.stagingDir, dataset, bad[0]!)}.bad`), 'the damaged staged file is kept aside');
  // Never downloaded twice: everything once, plus the damaged volume's refetch.
  const refetched = job.volumes.reduce((a, v) => a + v.downloadedBytes, 0) - stored;
  assert.ok(refetched >= 0 && refetched <= bad[0]!.storedSize, `refetched ${refetched} bytes`);
  assert.ok(job.volumes.every((v) => v.phase === 'received'));

  const status = await restoreStatus(ctx, dataset);
  const s = status.restores[0]!;
  assert.equal(s.next?.kind, 'done');
  assert.deepEqual(s.receivedSnapshots, fx.snapshots);
  assert.ok(s.spent > 0);

  // Run again after the end: nothing to do, nothing requested or downloaded.
  const before = server.accounting.bytesOut;
  const again = await restoreRun(ctx, { dataset, target });
  assert.ok(again.done && again.requested.length === 0 && again.downloaded.length === 0);
  assert.ok(server.accounting.bytesOut - before < 4096, 'only the key file was read');
});
