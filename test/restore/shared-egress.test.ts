/**
 * The free egress allowance is per AWS account, not per restore: two
 * datasets of one repository restored at the same time (each planned as if
 * it had the allowance to itself) together stay within it every calendar
 * month, and a run says when another restore used part of it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { restorePlan, restoreRun, type RestoreRunResult } from '../../src/services/restore/index.js';
import { requireZfs } from '../helpers/pool.js';
import { hashTree } from '../helpers/tree-hash.js';
import { jobOf, pushedFixture } from './helpers.js';

const HOUR = 3_600_000;
/** Usable egress per month: about one full stream (≈ 4.2 MB) and an incremental. */
const FREE_GB = 0.0056;

test('two restores of one repository share the monthly egress allowance', { timeout: 600_000 }, async (t) => {
  if (!requireZfs(t)) return;
  const fx = await pushedFixture(t, { start: new Date('2030-01-05T00:00:00Z'), restoreDelayMs: 6 * HOUR, fullFiles: 1, volumeSize: '5MiB', names: ['photos', 'docs'] });
  const { server, repo } = fx;
  const [photos, docs] = fx.datasets as [string, string];
  const targets: Record<string, string> = { [photos]: `${fx.pool.name}/photos-restored`, [docs]: `${fx.pool.name}/docs-restored` };
  const infos: string[] = [];
  const ctx = { ...fx.context(), log: { info: (m: string) => infos.push(m), warn() {} } };
  for (const ds of fx.datasets) {
    const plan = await restorePlan(ctx, { dataset: ds, freeEgressGB: FREE_GB, reserveGB: 0 });
    // Each plan alone puts about a full allowance into its first month.
    assert.ok(plan.months[0]!.bytes > (FREE_GB * 1e9) / 2, `${ds}: ${plan.months[0]!.bytes} bytes planned in the first month`);
  }

  const done = new Set<string>();
  const shared: RestoreRunResult[] = [];
  for (let i = 0; i < 200 && done.size < 2; i++) {
    let at = Number.POSITIVE_INFINITY;
    for (const ds of fx.datasets) {
      if (done.has(ds)) continue;
      const r = await restoreRun(ctx, { dataset: ds, target: targets[ds]! });
      if (r.sharedEgress) shared.push(r);
      if (r.done) done.add(ds);
      else at = Math.min(at, r.next.kind === 'wait-until' ? Date.parse(r.next.at!) : server.clock.nowMs() + 6 * HOUR);
    }
    if (done.size < 2) server.clock.set(new Date(Math.max(at, server.clock.nowMs() + 1)));
  }
  assert.equal(done.size, 2, 'both restores finished');

  // Together within the allowance in every calendar month (the server counts every byte that left it).
  const capBytes = FREE_GB * 1e9;
  const months = Object.entries(server.accounting.bytesOutByMonth).filter(([, b]) => b > 0);
  assert.ok(months.length >= 2, `downloads spread over ${months.length} month(s)`);
  for (const [m, b] of months) assert.ok(b <= capBytes, `${m}: ${b} bytes out > allowance ${capBytes}`);
  const jobs = fx.datasets.map((ds) => jobOf(repo.stateDir, ds));
  for (const m of new Set(jobs.flatMap((j) => Object.keys(j.egressByMonth)))) {
    const sum = jobs.reduce((a, j) => a + (j.egressByMonth[m] ?? 0), 0);
    assert.ok(sum <= capBytes, `${m}: the two jobs downloaded ${sum} bytes > allowance ${capBytes}`);
  }

  // No copy was thawed that the month's allowance could not take before it expired (and thawed, paid, again).
  const vols = jobs.flatMap((j) => j.volumes);
  assert.deepEqual(
    vols.filter((v) => v.expiredCopies > 0 || v.restoreRequests !== 1).map((v) => `${v.key}: ${v.restoreRequests} requests, ${v.expiredCopies} expired`),
    [],
    'one restore request per volume',
  );

  // A volume deferred for want of allowance was asked for when its deferral ended (just before the
  // month it is downloaded in), not only once that month had begun.
  const deferred = vols.filter((v) => v.notBefore);
  assert.ok(deferred.length > 0, 'some volume was deferred');
  for (const v of deferred) assert.equal(v.requestedAt, v.notBefore, `${v.key} deferred until ${v.notBefore} was requested at ${v.requestedAt}`);

  // A run that found part of the month's allowance used by the other restore said so.
  assert.ok(shared.length > 0, 'some run shared its month with the other restore');
  for (const r of shared) {
    const other = r.dataset === photos ? docs : photos;
    assert.deepEqual(r.sharedEgress!.datasets, [other]);
    const total = jobOf(repo.stateDir, other).egressByMonth[r.sharedEgress!.month] ?? 0;
    assert.ok(r.sharedEgress!.bytes > 0 && r.sharedEgress!.bytes <= total, `${r.sharedEgress!.bytes} bytes of ${other} in ${r.sharedEgress!.month} (${total} by the end)`);
  }
  assert.ok(infos.some((m) => /already downloaded .* the egress allowance is per account/.test(m)), 'the log says so');

  for (const ds of fx.datasets) {
    const mount = (await fx.pool.zfs.mountpoint(ds))!;
    assert.deepEqual(await hashTree(await fx.pool.zfs.mount(targets[ds]!)), await hashTree(mount));
  }
});
