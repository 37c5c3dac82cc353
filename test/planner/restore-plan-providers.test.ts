/**
 * The restore planner on each kind of provider restore step (issue #20):
 * GCS Archive has no thaw (no lead time, no temporary copy, a read fee per
 * GB); Scaleway thaws with Days only, in its own lead time, at one price for
 * every "tier". Figures computed by hand from the profiles' tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configPriceTable } from '../../src/cost/providers/index.js';
import { describeMonths, planRestore, type RestoreVolume } from '../../src/planner/restore-plan.js';
import { approx } from '../cost/approx.js';

const GB = 1e9;
const start = new Date('2027-03-10T00:00:00Z');

function volumes(n: number, gb: number): RestoreVolume[] {
  return Array.from({ length: n }, (_, i) => ({ key: `s/${i}`, streamId: 's', streamIndex: 0, volumeIndex: i, bytes: gb * GB, plaintextBytes: gb * GB - 100 }));
}

test('gcs-archive: no thaw step, downloads start at once; retrieval fee per GB, no temporary copy', () => {
  const P = configPriceTable({ provider: 'gcs-archive', region: 'us-central1' });
  // No free egress on GCS: the free schedule is refused with the way out.
  assert.throws(() => planRestore(volumes(3, 10), start, { mode: 'free' }, P), /no usable free egress.*--budget or --asap/);
  const p = planRestore(volumes(3, 10), start, { mode: 'asap' }, P);
  assert.equal(p.restoreStep, 'none');
  const m = p.months[0]!;
  assert.equal(m.requestAt, '2027-03-10T00:00:00.000Z');
  assert.equal(m.downloadFrom, '2027-03-10T00:00:00.000Z', 'no lead time');
  assert.equal(m.downloadBy, '2027-03-17T00:00:00.000Z');
  assert.equal(m.restoreDays, 0, 'no RestoreObject, so no Days');
  // 30 GB × $0.05 read fee = $1.50; 3 GETs × $0.05/1000 = $0.00015; no copy;
  // egress 30 GB × $0.12/GiB ÷ 1.073741824 GB/GiB = $3.35276126862.
  approx(m.cost.retrieval, 1.5, 'retrieval');
  approx(m.cost.requests, 0.00015, 'requests');
  assert.equal(m.cost.tempStorage, 0);
  approx(m.cost.egress, (30 * 0.12) / 1.073741824, 'egress');
  approx(p.totalCost, 1.5 + 0.00015 + (30 * 0.12) / 1.073741824, 'total');
  assert.equal(describeMonths(p).header[3], 'download from');
});

test('scaleway-glacier: Days-only thaw in a day, 75 GB free egress, one price whatever the tier', () => {
  const P = configPriceTable({ provider: 'scaleway-glacier', region: 'fr-par' });
  const p = planRestore(volumes(3, 30), start, { mode: 'free' }, P);
  assert.equal(p.restoreStep, 'days-only');
  // 75 GB free − 10 GB reserve = 65 GB a month: 30 + 30, then 30.
  assert.deepEqual(p.months.map((m) => m.volumes.length), [2, 1]);
  const [a, b] = p.months as [(typeof p.months)[0], (typeof p.months)[0]];
  // Request 03-10, readable 03-11 (lead 1 day), 7-day download → 03-18: 8 days + 1 margin.
  assert.equal(a.downloadFrom, '2027-03-11T00:00:00.000Z');
  assert.equal(a.restoreDays, 9);
  // Month 2: requested a day before 04-01.
  assert.equal(b.requestAt, '2027-03-31T00:00:00.000Z');
  assert.equal(b.downloadFrom, '2027-04-01T00:00:00.000Z');
  // EUR at 1.1: restore 60 GB × €0.009 = $0.594; copy 60 GB × €0.0146 × 9/30 = $0.28908; egress within 75 GB.
  approx(a.cost.retrieval, 0.594, 'retrieval');
  approx(a.cost.tempStorage, 0.28908, 'temp copy');
  assert.equal(a.cost.egress, 0);
  approx(b.cost.total, 0.297 + 0.14454, 'month 2');
  // A tier changes nothing on a Days-only provider: the same lead and price.
  const std = planRestore(volumes(3, 30), start, { mode: 'free', tier: 'Standard' }, P);
  assert.deepEqual(std.months.map((m) => [m.downloadFrom, m.cost.total]), p.months.map((m) => [m.downloadFrom, m.cost.total]));
});

test('aws-deep-archive keeps its tiered thaw (Bulk 2 days)', () => {
  const P = configPriceTable({ region: 'us-east-1' });
  const p = planRestore(volumes(1, 10), start, { mode: 'free' }, P);
  assert.equal(p.restoreStep, 'tiered');
  assert.equal(p.months[0]!.downloadFrom, '2027-03-12T00:00:00.000Z');
  assert.equal(describeMonths(p).header[3], 'thaw by');
});
