/**
 * `zbk consolidate --apply --allow-early-delete` end to end through the CLI,
 * on zfs-fuse and the S3 test server, with the clock injected: without the
 * flag --apply deletes nothing younger than 180 days; the report with the
 * flag shows what would go and the charge, and changes nothing; with the
 * flag --apply deletes in the same run (nothing deferred) both a chain an
 * earlier --apply left scheduled and the chain this run's new full
 * replaces, and reports the early-deletion charge the store would bill
 * (computed from the server's own sizes, classes and upload times); the
 * latest snapshot restores identically.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { daysBetween, earlyDeletionCharge } from '../../src/cost/model.js';
import { priceTable } from '../../src/cost/prices.js';
import { streamRecordKey } from '../../src/layout.js';
import type { ConsolidateResult } from '../../src/services/consolidate/run.js';
import type { ListEntry } from '../../src/store/object-store.js';
import { jsonOf } from '../helpers/cli.js';
import { requireZfs } from '../helpers/pool.js';
import { DAY, WRITES, assertLatestRestoresIdentical, createRig, ok, pushChain, pushChange, sum } from './setup.js';

const DELETES = ['DeleteObject', 'DeleteObjects'];
const sorted = (keys: Iterable<string>): string[] => [...keys].sort();
const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-12 + 1e-9 * Math.abs(b), `${what}: ${a} vs ${b}`);

test('consolidate --allow-early-delete: nothing young deleted without it; with it the unneeded objects go in the same run, the charge is reported, the latest restores identically', async (t) => {
  if (!requireZfs(t)) return;
  const rig = await createRig(t);

  // Chain A (days 0–2), re-based at day 3 WITHOUT the flag: every old object is younger than 180 days and stays.
  await pushChain(rig);
  const chainA = await rig.keys('data/');
  const recordsA = await rig.keys('streams/');
  rig.server.accounting.reset();
  const first = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--apply', '--json']), 'apply without --allow-early-delete'));
  const f = first.datasets[0]!;
  assert.ok(f.consolidated, 'a new full of @s3 was pushed');
  assert.deepEqual(f.deleted, []);
  assert.equal(f.earlyDeletionCharges, 0);
  assert.equal(sum(rig.server.accounting.requests, DELETES), 0, `no DELETE before 180 days: ${JSON.stringify(rig.server.accounting.requests)}`);
  assert.deepEqual((await rig.keys('data/')).filter((k) => chainA.includes(k)), chainA, 'every object of chain A is still stored');
  assert.deepEqual((await rig.keys('streams/')).filter((k) => recordsA.includes(k)), recordsA, 'and every stream record');
  assert.deepEqual(sorted(f.schedule.later.map((x) => x.key)), chainA, 'chain A is scheduled for later');

  // Chain B (days 4–5): the new full of @s3 plus two incrementals with dead data; all of it young.
  await pushChange(rig, 4, 's4', { remove: 'c', add: 'd', files: 3 });
  await pushChange(rig, 5, 's5', { remove: 'd', add: 'e', files: 1 });
  const chainB = (await rig.keys('data/')).filter((k) => !chainA.includes(k));
  assert.equal(chainB.length, 3);

  // Day 6: the report with the flag shows the deletions and their charge, and writes nothing.
  rig.server.accounting.reset();
  const human = ok(await rig.zbkAt(6, ['consolidate', '--allow-early-delete']), 'human report');
  assert.match(human.stdout, /consolidation recommended: pays back in month \d+/);
  assert.match(human.stdout, /; early-deletion charges \$0\.\d{4}\n/);
  assert.match(human.stdout, /--apply would delete 3 object\(s\) of the old chain now and schedule 0/);
  assert.match(human.stdout, /deletable now: 3 object\(s\), [^\n]*, early-deletion charges \$0\.\d{4}\n/);
  const report = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(6, ['consolidate', rig.ds, '--allow-early-delete', '--json']), 'report'));
  assert.equal(sum(rig.server.accounting.requests, WRITES), 0, `the report wrote to the store: ${JSON.stringify(rig.server.accounting.requests)}`);
  const r = report.datasets[0]!;
  assert.equal(r.plan?.recommend, true, r.plan?.reason);
  assert.deepEqual(sorted(r.plan!.deleteNow.map((x) => x.key)), chainB, 'the chain the new full replaces goes now');
  assert.equal(r.plan!.deleteLater.length, 0);
  assert.deepEqual(sorted(r.schedule.due.map((x) => x.key)), chainA, 'chain A (superseded at day 3) is deletable now');
  assert.equal(r.schedule.later.length, 0);
  const reported = r.plan!.earlyDeletionCharges + r.schedule.due.reduce((n, x) => n + x.earlyDeletionCharge, 0);

  // What the store bills for deleting each object now: its remaining days to 180, from the server's own listing.
  const prices = priceTable(rig.server.region, loadConfig(rig.repo.configPath).prices);
  const at = new Date(rig.t0.getTime() + 6 * DAY);
  const listed = new Map<string, ListEntry>();
  for await (const e of rig.store().list('data/')) listed.set(e.key, e);
  const billed = (keys: string[]): number =>
    keys.reduce((n, k) => {
      const e = listed.get(k)!;
      assert.equal(e.storageClass, 'DEEP_ARCHIVE', k);
      return n + earlyDeletionCharge({ bytes: e.size, storageClass: 'DEEP_ARCHIVE' }, daysBetween(e.lastModified, at), prices);
    }, 0);
  const expected = billed([...chainA, ...chainB]);
  assert.ok(expected > 0);
  close(r.plan!.earlyDeletionCharges, billed(chainB), 'the plan charges chain B');
  close(reported, expected, 'the report charges both chains');

  // Day 6, --apply --allow-early-delete: re-based on a new full of @s5 and both chains deleted in this very run.
  rig.server.accounting.reset();
  const applied = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(6, ['consolidate', rig.ds, '--apply', '--allow-early-delete', '--json']), 'apply --allow-early-delete'));
  const a = applied.datasets[0]!;
  assert.ok(a.consolidated, 'a new full was pushed');
  assert.equal(a.consolidated.snapshot, 's5');
  assert.deepEqual(sorted(a.deleted.map((x) => x.key)), sorted([...chainA, ...chainB]), 'everything the plan called unneeded is deleted now, not deferred');
  close(a.earlyDeletionCharges, expected, 'the early-deletion charge reported');
  assert.deepEqual([a.schedule.due.length, a.schedule.later.length], [0, 0], 'nothing left to delete');
  assert.ok((rig.server.accounting.requests.DeleteObjects ?? 0) >= 1);

  const m = rig.manifest();
  const nf = a.consolidated.streamId;
  const nfKeys = m.volumes(nf).map((v) => v.key).sort();
  try {
    assert.deepEqual(m.integrityCheck(), { ok: true, problems: [] });
    assert.deepEqual(m.chainFor(rig.ds).map((s) => s.streamId), [nf]);
    const gone = m.streams(rig.ds).filter((s) => s.streamId !== nf);
    assert.deepEqual(gone.map((s) => s.state), Array(6).fill('deleted'), 'both old chains are recorded deleted');
    for (const s of gone) {
      for (const v of m.volumes(s.streamId)) assert.ok((v.deletedAt!.getTime() - v.uploadedAt!.getTime()) / DAY < 180, `${v.key} recorded as deleted early`);
    }
  } finally {
    m.close();
  }
  assert.deepEqual(await rig.keys('data/'), nfKeys, 'only the new full is stored');
  assert.deepEqual(await rig.keys('streams/'), [streamRecordKey(nf)], 'the deleted streams lost their records');

  await assertLatestRestoresIdentical(rig, `${rig.pool.name}/restored`);
});
