import { test } from 'node:test';
import assert from 'node:assert/strict';
import { priceTable } from '../../src/cost/prices.js';
import { chainTo, planConsolidation, type ConsolidationInput, type ConsolidationStream } from '../../src/planner/consolidate-plan.js';
import { approx, DA_OVERHEAD_MONTH as OH } from '../cost/approx.js';

const P = priceTable('us-east-1');
const GB = 1e9;
const now = new Date('2027-07-01T00:00:00Z');

const stream = (id: string, kind: 'full' | 'incremental', from: string | null, to: string, gb: number, uploaded: string): ConsolidationStream => ({
  streamId: id,
  kind,
  fromGuid: from,
  toGuid: to,
  storedBytes: gb * GB,
  volumes: [{ key: `data/${id}/0`, bytes: gb * GB, uploadedAt: new Date(uploaded) }],
});

// F: full of g0, 100 GB, 273 days old; I1: g0→g1, 30 GB, 181 days old; I2: g1→g2, 20 GB, 60 days old.
const F = stream('F', 'full', null, 'g0', 100, '2026-10-01T00:00:00Z');
const I1 = stream('I1', 'incremental', 'g0', 'g1', 30, '2027-01-01T00:00:00Z');
const I2 = stream('I2', 'incremental', 'g1', 'g2', 20, '2027-05-02T00:00:00Z');

function input(over: Partial<ConsolidationInput> = {}): ConsolidationInput {
  return {
    dataset: 'tank/photos',
    streams: [F, I1, I2],
    keptGuids: ['g2'],
    latestGuid: 'g2',
    newFullBytes: 110 * GB,
    now,
    prices: P,
    volumeBytes: 200 * GB, // one volume
    partBytes: 1e9, // 110 parts
    ...over,
  };
}

test('chainTo follows the cheapest chain', () => {
  assert.deepEqual(chainTo('g2', [F, I1, I2])!.map((s) => s.streamId), ['F', 'I1', 'I2']);
  const F2 = stream('F2', 'full', null, 'g2', 110, '2027-06-01T00:00:00Z');
  assert.deepEqual(chainTo('g2', [F, I1, I2, F2])!.map((s) => s.streamId), ['F2']);
  assert.equal(chainTo('g9', [F, I1, I2]), null);
});

test('young objects go to deleteLater with notBefore = upload + 180 days, never deleteNow', () => {
  const p = planConsolidation(input());
  assert.deepEqual(p.deleteNow.map((d) => d.key), ['data/F/0', 'data/I1/0']);
  assert.deepEqual(p.deleteNow.map((d) => d.earlyDeletionCharge), [0, 0]);
  // 2027-05-02 + 180 days = 2027-10-29 (29 + 30 + 31 + 31 + 30 + 29).
  assert.deepEqual(p.deleteLater, [{ key: 'data/I2/0', notBefore: '2027-10-29T00:00:00.000Z' }]);
  assert.equal(p.earlyDeletionCharges, 0);
});

test('break-even and savings arithmetic', () => {
  const p = planConsolidation(input());
  // Upload, as a push prices it: (1 Create + 110 UploadPart) × $0.005/1000 + 1 Complete × $0.05/1000
  // + 2 metadata PUTs × $0.005/1000 = $0.000555 + $0.00005 + $0.00001 = $0.000615
  approx(p.newFull.uploadCost, 0.000615);
  approx(p.oneTimeCost, 0.000615);
  // New full: 110 × $0.00099 = $0.1089 + 1 overhead per month.
  approx(p.newFull.monthlyCost, 0.1089 + OH);
  // Month 1: F + I1 deleted (130 GB): $0.1287 + 2 OH − ($0.1089 + OH) = $0.0198 + OH;
  // cumulative −$0.000615 + $0.0198 > 0 → break-even in month 1.
  assert.equal(p.breakEvenMonth, 1);
  assert.equal(p.recommend, true);
  // Steady state (I2 gone too): 150 GB × $0.00099 + 3 OH − ($0.1089 + OH) = $0.0396 + 2 OH
  approx(p.monthlySavings, 0.0396 + 2 * OH);
  // Horizon 24: I2 deleted after 120 days = start of month 5.
  // −0.000615 + 4 × (0.0198 + OH) + 20 × (0.0396 + 2 OH) = 0.870585 + 44 OH
  approx(p.netSavingsOverHorizon, 0.870585 + 44 * OH);
  // Restore of g2: 150 GB in 3 objects (100, 30, 20) at 90 GB/month: [100], [30, 20] → 2 months; after: 110 GB → 1.
  assert.deepEqual(p.restoreBefore, { bytes: 150 * GB, months: 2 });
  assert.deepEqual(p.restoreAfter, { bytes: 110 * GB, months: 1 });
});

test('break-even later than month 1, and not within a short horizon', () => {
  // Only F (100 GB) + I1 (30 GB), new full 100 GB in 10,000 parts of 10 MB:
  // upload (1 + 10,000) × $0.005/1000 + 1 × $0.05/1000 + 2 × $0.005/1000 = $0.050005 + $0.00005 + $0.00001 = $0.050065;
  // saving 30 × $0.00099 + OH = $0.0297 + OH per month.
  // Month 1: −0.050065 + 0.0297 + OH < 0; month 2: −0.020365 + 0.0297 + 2 OH > 0 → month 2.
  const base = input({ streams: [F, I1], keptGuids: ['g1'], latestGuid: 'g1', newFullBytes: 100 * GB, partBytes: 1e7 });
  const p = planConsolidation(base);
  approx(p.oneTimeCost, 0.050065);
  assert.equal(p.breakEvenMonth, 2);
  assert.equal(p.recommend, true);
  const short = planConsolidation({ ...base, horizonMonths: 1 });
  assert.equal(short.breakEvenMonth, null);
  assert.equal(short.recommend, false);
  // −0.050065 + 0.0297 + OH
  approx(short.netSavingsOverHorizon, -0.020365 + OH);
});

test('allowEarlyDelete puts young objects in deleteNow with their charge', () => {
  const p = planConsolidation(input({ allowEarlyDelete: true }));
  assert.deepEqual(p.deleteLater, []);
  const i2 = p.deleteNow.find((d) => d.key === 'data/I2/0')!;
  // (20e9 + 32768) B = 20.000032768 GB × $0.00099 × (180 − 60)/30 = $0.07920012976128
  approx(i2.earlyDeletionCharge, 0.07920012976128);
  approx(p.earlyDeletionCharges, 0.07920012976128);
  approx(p.oneTimeCost, 0.000615 + 0.07920012976128);
});

test('never deletes what a kept snapshot needs', () => {
  // g1 kept too: F and I1 stay; only I2 could go, 20 GB < a 110 GB new full.
  const p = planConsolidation(input({ keptGuids: ['g1', 'g2'], allowEarlyDelete: true }));
  const deleted = new Set([...p.deleteNow, ...p.deleteLater, ...p.prune.deleteNow, ...p.prune.deleteLater].map((d) => d.key));
  for (const s of chainTo('g1', [F, I1, I2])!) for (const v of s.volumes) assert.ok(!deleted.has(v.key), v.key);
  assert.equal(p.recommend, false);
  // Not recommended: nothing at all to delete (g2's only chain stays whole).
  assert.equal(deleted.size, 0);
  assert.deepEqual(p.chains[0]!.neededBy, ['g1', 'g2']);
});

test('a recommended plan keeps everything other kept snapshots need', () => {
  // g1 and g2 kept; I2 huge (300 GB) so re-basing g2 on a 110 GB full pays: only I2 goes.
  const big = stream('I2', 'incremental', 'g1', 'g2', 300, '2026-12-01T00:00:00Z');
  const p = planConsolidation(input({ streams: [F, I1, big], keptGuids: ['g1', 'g2'] }));
  assert.equal(p.recommend, true);
  assert.deepEqual(p.deleteNow.map((d) => d.key), ['data/I2/0']);
  assert.deepEqual(p.deleteLater, []);
});

test('objects no kept snapshot needs are pruned, outside the comparison', () => {
  // An older, separate chain (O, full of g-old, 40 GB, 300 days old) that nothing kept needs.
  const O = stream('O', 'full', null, 'g-old', 40, '2026-09-04T00:00:00Z');
  const p = planConsolidation(input({ streams: [O, F, I1, I2] }));
  assert.deepEqual(p.prune.deleteNow.map((d) => d.key), ['data/O/0']);
  assert.ok(!p.deleteNow.some((d) => d.key === 'data/O/0'));
  approx(p.oneTimeCost, 0.000615);
  assert.equal(p.chains.length, 2);
});

test('latest already a single full: nothing to do', () => {
  const F2 = stream('F2', 'full', null, 'g2', 110, '2027-06-01T00:00:00Z');
  const p = planConsolidation(input({ streams: [F2] }));
  assert.equal(p.recommend, false);
  assert.match(p.reason, /single full/);
});

test('interval timing: a chain that pays back but is younger than the cheapest interval waits; payback timing does not', () => {
  // F 100 GB, 100 days old; I 40 GB, 50 days old; a new full 110 GB sheds 30 GB: 0.3 GB of waste a day.
  const young = [stream('F', 'full', null, 'g0', 100, '2027-03-23T00:00:00Z'), stream('I', 'incremental', 'g0', 'g1', 40, '2027-05-12T00:00:00Z')];
  const base = input({ streams: young, keptGuids: ['g1'], latestGuid: 'g1' });
  const paying = planConsolidation({ ...base, timing: 'payback' });
  assert.equal(paying.recommend, true, paying.reason);
  const waiting = planConsolidation(base);
  assert.equal(waiting.breakEvenMonth, paying.breakEvenMonth);
  assert.equal(waiting.recommend, false);
  assert.match(waiting.reason, /would pay back in month \d+ against never re-basing, but one made on 2027-10-17 costs about \$\d+\.\d\d\/year less/);
  assert.ok(waiting.interval.waitingSavesPerYear > 0);
  assert.deepEqual([waiting.deleteNow, waiting.deleteLater], [[], []], 'nothing is deleted for a consolidation that waits');
  assert.equal(waiting.interval.chainAgeDays, 100);
  approx(waiting.interval.wasteBytesPerDay, 0.3 * GB);
  // i = 0.4 GB/day, a = 0.3 GB/day, R = $0.000615, p = $0.00099/GB-month:
  // √((2R/p + i·180²)/a) = √((2 × 0.000615 / 3.3e-14 + 0.4e9 × 32400) / 0.3e9) ≈ 207.9 days.
  assert.ok(Math.abs(waiting.interval.cheapestDays - 208) <= 1, `${waiting.interval.cheapestDays}`);
  assert.equal(waiting.interval.dueAt.slice(0, 10), new Date(Date.parse('2027-03-23T00:00:00Z') + waiting.interval.cheapestDays * 86_400_000).toISOString().slice(0, 10));
  // Once the chain is that old (the same streams, later), the interval rule recommends it too.
  const later = planConsolidation({ ...base, now: new Date(waiting.interval.dueAt) });
  assert.equal(later.recommend, true, later.reason);
});

test('a chain barely larger than a new full is not re-uploaded, whatever the timing: the saving must be 1 % of the full', () => {
  // F 100 GB (273 days), I 0.5 GB; a new full of 100.1 GB sheds 0.4 GB: $0.0004/month against the full's $0.099.
  const streams = [F, stream('I', 'incremental', 'g0', 'g1', 0.5, '2027-01-01T00:00:00Z')];
  for (const timing of ['payback', 'interval'] as const) {
    const p = planConsolidation(input({ streams, keptGuids: ['g1'], latestGuid: 'g1', newFullBytes: 100.1 * GB, timing }));
    assert.ok(p.breakEvenMonth !== null, 'it pays back over the horizon');
    assert.equal(p.recommend, false, timing);
    assert.match(p.reason, /under 1 % of its own storage/);
  }
});
