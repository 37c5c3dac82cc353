/**
 * `zbk consolidate` end to end through the CLI, on each snapshot source
 * (zfs-fuse, and real btrfs in the zfs-fuse lane: test/e2e/source-fixture.ts)
 * and the S3 test server, with the clock injected (ZBK_NOW + the server's TestClock):
 * the report changes nothing; --apply re-bases the chain on a new full and
 * deletes nothing younger than 180 days; once the clock passes 180 days a
 * later --apply deletes the superseded objects and their stream records;
 * the latest snapshot restores identically; the server's request counts
 * match the cost model's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { uploadRequests } from '../../src/cost/model.js';
import { priceTable } from '../../src/cost/prices.js';
import { streamRecordKey } from '../../src/layout.js';
import type { ConsolidateResult } from '../../src/services/consolidate/run.js';
import type { CostResult } from '../../src/services/cost.js';
import { jsonOf } from '../helpers/cli.js';
import { requireSource, sourcesUnderTest } from '../e2e/source-fixture.js';
import { WRITES, assertLatestRestoresIdentical, createSourceRig, ok, pushChain, sum } from './setup.js';

for (const kind of sourcesUnderTest) test(`[${kind}] consolidate: report, --apply without early deletion, deletion after 180 days, identical restore, request counts`, async (t) => {
  if (!requireSource(t, kind)) return;
  const rig = await createSourceRig(t, kind);
  await pushChain(rig);
  const oldData = await rig.keys('data/');
  const oldRecords = await rig.keys('streams/');
  assert.equal(oldRecords.length, 3);

  // The default timing waits: a full made on day 3 would be stored beside the old chain until day 180.
  const waiting = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--timing', 'interval', '--json']), 'interval report'));
  const wp = waiting.datasets[0]!.plan!;
  assert.equal(wp.recommend, false, wp.reason);
  assert.match(wp.reason, /against never re-basing, but one made on \d{4}-\d\d-\d\d costs about/);
  assert.ok(wp.interval.cheapestDays >= 180, `interval ${wp.interval.cheapestDays} days, before the 180-day minimum`);
  assert.ok(wp.breakEvenMonth !== null, 'it does pay back: only the timing holds it');

  // The report spends nothing and changes nothing.
  rig.server.accounting.reset();
  const human = ok(await rig.zbkAt(3, ['consolidate']), 'human report');
  assert.match(human.stdout, /consolidation recommended: pays back in month \d+/);
  assert.match(human.stdout, /--apply would delete 0 object\(s\) of the old chain now and schedule 3/);
  const report = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--json']), 'report'));
  assert.equal(sum(rig.server.accounting.requests, WRITES), 0, `the report wrote to the store: ${JSON.stringify(rig.server.accounting.requests)}`);
  const d = report.datasets[0]!;
  assert.equal(report.applied, false);
  assert.equal(d.plan?.recommend, true, d.plan?.reason);
  assert.deepEqual(d.kept.map((k) => k.name), [rig.snap('s3')]);
  assert.equal(d.plan!.deleteNow.length, 0, 'nothing is old enough to delete for free');
  assert.deepEqual(d.plan!.deleteLater.map((x) => x.key).sort(), oldData, 'the whole old chain is scheduled');
  assert.equal(d.plan!.earlyDeletionCharges, 0);
  const m0 = rig.manifest();
  const before = m0.streams(rig.ds).map((s) => `${s.streamId}:${s.state}`);
  m0.close();

  // --apply at day 3: new full pushed, old chain superseded, nothing deleted.
  rig.server.accounting.reset();
  const applied = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(3, ['consolidate', rig.ds, '--apply', '--json']), 'apply'));
  const a = applied.datasets[0]!;
  assert.ok(a.consolidated, 'a new full was pushed');
  assert.equal(a.deleted.length, 0);
  assert.equal(rig.server.accounting.requests.DeleteObjects ?? 0, 0, 'no DELETE before 180 days');
  assert.deepEqual((await rig.keys('data/')).filter((k) => oldData.includes(k)), oldData, 'every old object is still stored');
  assert.deepEqual(a.schedule.later.map((x) => x.key).sort(), oldData);
  const firstFree = Math.min(...a.schedule.later.map((x) => Date.parse(x.notBefore)));
  assert.equal(firstFree, rig.t0.getTime() + 180 * 86_400_000, 'free to delete 180 days after the first upload');

  // Server accounting = the model's request counts for the new full.
  const m1 = rig.manifest();
  const nf = m1.stream(a.consolidated.streamId)!;
  // The new full is of the latest pushed snapshot, with its identity (btrfs: zbk's pin of it, sent again).
  assert.equal(nf.kind, 'full');
  assert.equal(nf.to.name, rig.snap('s3'));
  assert.equal(nf.to.guid.toString(), d.latest!.guid);
  const nfVolumes = m1.volumes(nf.streamId);
  const chain = m1.chainFor(rig.ds).map((s) => s.streamId);
  const states = m1.streams(rig.ds).map((s) => `${s.streamId}:${s.state}`);
  m1.close();
  assert.deepEqual(chain, [nf.streamId], 'the latest now restores from the new full alone');
  assert.deepEqual(states, [...before.map((x) => x.replace(/:complete$/, ':superseded')), `${nf.streamId}:complete`]);
  const parts = nfVolumes.reduce((n, v) => n + (v.partCount ?? 0), 0);
  const model = uploadRequests(nfVolumes.length, parts, priceTable('us-east-1'));
  const byClass = rig.server.accounting.requestsByClass;
  assert.equal(
    sum(byClass, ['CreateMultipartUpload:DEEP_ARCHIVE', 'UploadPart:DEEP_ARCHIVE', 'CompleteMultipartUpload:DEEP_ARCHIVE']),
    model.atClassRate + model.atStandardRate,
    `server ${JSON.stringify(byClass)} vs model ${JSON.stringify(model)}`,
  );
  assert.equal(byClass['CreateMultipartUpload:DEEP_ARCHIVE'], nfVolumes.length);
  assert.equal(a.plan?.newFull.volumes, nfVolumes.length, 'the plan estimated the number of objects');
  t.diagnostic(`plan estimated ${d.plan!.newFull.parts} parts, pushed ${parts}`);
  assert.ok(Math.abs(d.plan!.newFull.parts - parts) <= 1, `plan estimated ${d.plan!.newFull.parts} parts, pushed ${parts}`);

  // zbk cost sees the scheduled deletions.
  const cost = jsonOf<CostResult>(ok(await rig.zbkAt(4, ['cost', '--months', '12', '--json']), 'cost'));
  assert.equal(cost.scheduledDeletions.objects, oldData.length);
  assert.ok(cost.projection[11]!.existing < cost.projection[0]!.existing, 'the projection drops once the old chain is deleted');

  // Day 179.9: still too young (the first object turns 180 days at day 180).
  rig.server.accounting.reset();
  const storedBefore = (await rig.keys('')).filter((k) => k !== 'zbk.lease');
  const early = ok(await rig.zbkAt(179.9, ['consolidate', '--apply']), 'apply at day 179.9');
  assert.match(early.stdout, /no consolidation: the latest snapshot is already restored from a single full stream/);
  assert.match(early.stdout, /deleted 0 object\(s\)/);
  assert.match(early.stdout, /scheduled: 3 object\(s\)/);
  // Nothing written but the writer lease (taken and released: PutObject of zbk.lease only).
  const leaseOnly = WRITES.filter((w) => w !== 'PutObject');
  assert.equal(sum(rig.server.accounting.requests, leaseOnly), 0, `nothing written: ${JSON.stringify(rig.server.accounting.requests)}`);
  assert.deepEqual((await rig.keys('')).filter((k) => k !== 'zbk.lease'), storedBefore, 'no object added or removed besides the lease');
  assert.deepEqual((await rig.keys('data/')).filter((k) => oldData.includes(k)), oldData);

  // Day 180.5: s1's objects (uploaded at day 0) are free; s2's and s3's (days 1, 2) not yet.
  const m2 = rig.manifest();
  const oldStreams = m2.streams(rig.ds).filter((s) => s.state === 'superseded');
  const keysOf = (name: string): string[] => m2.volumes(oldStreams.find((s) => s.to.name === rig.snap(name))!.streamId).map((v) => v.key);
  const s1 = { id: oldStreams.find((s) => s.to.name === rig.snap('s1'))!.streamId, keys: keysOf('s1') };
  const rest = [...keysOf('s2'), ...keysOf('s3')].sort();
  m2.close();
  const mid = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(180.5, ['consolidate', '--apply', '--json']), 'apply at day 180.5'));
  assert.deepEqual(mid.datasets[0]!.deleted.map((x) => x.key).sort(), [...s1.keys].sort());
  assert.equal(mid.datasets[0]!.earlyDeletionCharges, 0);
  assert.deepEqual((await rig.keys('data/')).filter((k) => oldData.includes(k)), rest, 'only the free objects were deleted');
  assert.ok(!(await rig.keys('streams/')).includes(streamRecordKey(s1.id)), 'the wholly deleted stream lost its record too');

  // Day 183: everything superseded is free and deleted; only the new full remains.
  rig.server.accounting.reset();
  const late = jsonOf<ConsolidateResult>(ok(await rig.zbkAt(183, ['consolidate', '--apply', '--json']), 'apply at day 183'));
  assert.deepEqual(late.datasets[0]!.deleted.map((x) => x.key).sort(), rest);
  assert.equal(late.datasets[0]!.schedule.later.length, 0);
  assert.deepEqual(await rig.keys('data/'), nfVolumes.map((v) => v.key).sort());
  assert.deepEqual(await rig.keys('streams/'), [streamRecordKey(nf.streamId)]);
  assert.equal(rig.server.accounting.requests.DeleteObjects, 2, 'one batch of volumes, one of stream records (mirror pruning aside)');
  const m3 = rig.manifest();
  try {
    assert.deepEqual(m3.integrityCheck(), { ok: true, problems: [] });
    assert.deepEqual(m3.streams(rig.ds).map((s) => s.state).sort(), ['complete', 'deleted', 'deleted', 'deleted']);
  } finally {
    m3.close();
  }

  await assertLatestRestoresIdentical(rig, rig.source.target('restored'));
});
