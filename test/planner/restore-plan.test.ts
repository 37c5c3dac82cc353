import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/errors.js';
import { priceTable } from '../../src/cost/prices.js';
import { describeMonths, packInOrder, planRestore, stagingPeak, type RestoreVolume } from '../../src/planner/restore-plan.js';
import { approx } from '../cost/approx.js';

const P = priceTable('us-east-1');
const GB = 1e9;

/** Stream A: 5 × 6 GB volumes; stream B: 3 × 6 GB. 48 GB in all. */
function chain(): RestoreVolume[] {
  const v: RestoreVolume[] = [];
  for (let i = 0; i < 5; i++) v.push({ key: `a/${i}`, streamId: 'a', streamIndex: 0, volumeIndex: i, bytes: 6 * GB, plaintextBytes: 6 * GB - 1000 });
  for (let i = 0; i < 3; i++) v.push({ key: `b/${i}`, streamId: 'b', streamIndex: 1, volumeIndex: i, bytes: 6 * GB, plaintextBytes: 6 * GB - 1000 });
  return v;
}
// Tiny allowance: 30 GB free − 10 GB reserve = 20 GB usable per month.
const tiny = { freeEgressGB: 30, reserveGB: 10 };
const start = new Date('2027-03-10T00:00:00Z');

test('free mode: tiny allowance spans ≥ 3 months, each within allowance − reserve', () => {
  const p = planRestore(chain(), start, { ...tiny, mode: 'free' }, P);
  // 6 + 6 + 6 = 18 ≤ 20 < 24 → 3 volumes per month: 3, 3, 2.
  assert.deepEqual(p.months.map((m) => m.volumes.length), [3, 3, 2]);
  assert.deepEqual(p.months.map((m) => m.month), ['2027-03', '2027-04', '2027-05']);
  for (const m of p.months) {
    assert.ok(m.bytes <= 20 * GB);
    assert.equal(m.cost.egress, 0);
  }
  assert.deepEqual(p.months.flatMap((m) => m.volumes), chain().map((v) => v.key), 'chain order kept');
  assert.equal(p.totalBytes, 48 * GB);
  // Month 1: 18 GB Bulk: 18 × $0.0025 = $0.045; 3 × ($0.025 + $0.0004)/1000 = $0.0000762;
  // temp 18 × $0.023 × 10/30 = $0.138 → $0.1830762
  approx(p.months[0]!.cost.total, 0.1830762, 'month 1');
  // Month 3: 12 GB: $0.03 + $0.0000508 + 12 × 0.023 × 10/30 ($0.092) = $0.1220508
  approx(p.months[2]!.cost.total, 0.1220508, 'month 3');
  approx(p.totalCost, 0.1830762 * 2 + 0.1220508, 'total');
  assert.equal(p.monthlyCapacityGB, 20);
});

test('restore days cover thaw + download; finish is the last download', () => {
  const p = planRestore(chain(), start, { ...tiny, mode: 'free' }, P);
  // Month 1: request 03-10, Bulk thaw 2 days → 03-12, 7-day download → 03-19: 9 days + 1 margin.
  assert.equal(p.months[0]!.requestAt, '2027-03-10T00:00:00.000Z');
  assert.equal(p.months[0]!.downloadBy, '2027-03-19T00:00:00.000Z');
  assert.equal(p.months[0]!.restoreDays, 10);
  // Month 2: request 2 days before 04-01 (03-30), download 04-01 → 04-08: 9 days + 1.
  assert.equal(p.months[1]!.requestAt, '2027-03-30T00:00:00.000Z');
  assert.equal(p.months[1]!.downloadFrom, '2027-04-01T00:00:00.000Z');
  assert.equal(p.months[1]!.restoreDays, 10);
  assert.equal(p.restoreDays['b/2'], 10);
  assert.equal(Object.keys(p.restoreDays).length, 8);
  assert.equal(p.finish, '2027-05-08T00:00:00.000Z');
  // Standard tier, 12 h thaw, 3-day download: request 03-10 → download by 03-13T12:00: 3.5 → 4 days + 1.
  const s = planRestore(chain(), start, { ...tiny, tier: 'Standard', downloadDays: 3 }, P);
  assert.equal(s.months[0]!.restoreDays, 5);
  for (const m of [...p.months, ...s.months]) {
    const expiry = new Date(m.requestAt).getTime() + m.restoreDays * 86_400_000;
    assert.ok(expiry >= new Date(m.downloadBy).getTime(), 'copy outlives its download');
  }
});

test('a start month too short for thaw + download begins in the next month', () => {
  // 03-28 + 2 + 7 = 04-06, after the end of March.
  const p = planRestore(chain(), new Date('2027-03-28T00:00:00Z'), { ...tiny }, P);
  assert.equal(p.months[0]!.month, '2027-04');
  assert.equal(p.months[0]!.requestAt, '2027-03-30T00:00:00.000Z');
  assert.equal(p.months[0]!.downloadFrom, '2027-04-01T00:00:00.000Z');
  assert.ok(p.warnings.some((w) => /too short/.test(w)));
});

test('asap: one month, cost = sum of its parts with egress', () => {
  const p = planRestore(chain(), start, { ...tiny, mode: 'asap' }, P);
  assert.equal(p.months.length, 1);
  const c = p.months[0]!.cost;
  approx(c.retrieval, 0.12); // 48 × $0.0025
  approx(c.requests, 0.0002032); // 8 × $0.0254/1000
  approx(c.tempStorage, 0.368); // 48 × $0.023 × 10/30
  approx(c.egress, 2.52); // reserve 10 + 48 = 58 GB, 28 over 30 free × $0.09
  approx(p.totalCost, 0.12 + 0.0002032 + 0.368 + 2.52);
  approx(p.totalCost, c.retrieval + c.requests + c.tempStorage + c.egress);
});

test('budget: the fastest schedule within the budget', () => {
  // k = 1 is asap: $3.0082032. k = 2: last month b/0..b/2 (18 GB, $0.1830762); first month
  // 30 GB: $0.075 + $0.000127 + $0.23 + egress (10 + 30 − 30) × $0.09 = $0.9 → $1.205127.
  // k = 2 total = $1.3882032.
  const two = planRestore(chain(), start, { ...tiny, mode: 'budget', budgetUSD: 2 }, P);
  assert.equal(two.months.length, 2);
  assert.equal(two.withinBudget, true);
  assert.deepEqual(two.months[1]!.volumes, ['b/0', 'b/1', 'b/2']);
  approx(two.totalCost, 1.205127 + 0.1830762);
  const one = planRestore(chain(), start, { ...tiny, mode: 'budget', budgetUSD: 5 }, P);
  assert.equal(one.months.length, 1);
  approx(one.totalCost, 3.0082032);
  const none = planRestore(chain(), start, { ...tiny, mode: 'budget', budgetUSD: 0.01 }, P);
  assert.equal(none.months.length, 3);
  assert.equal(none.withinBudget, false);
  assert.ok(none.warnings.some((w) => /below the cheapest/.test(w)));
  assert.throws(() => planRestore(chain(), start, { mode: 'budget' }, P), UsageError);
});

test('a volume above the usable allowance gets its own month and shows its egress', () => {
  const v = chain();
  v.splice(5, 0, { key: 'big/0', streamId: 'big', streamIndex: 0.5, volumeIndex: 0, bytes: 25 * GB, plaintextBytes: 25 * GB });
  const p = planRestore(v, start, { ...tiny }, P);
  const m = p.months.find((x) => x.volumes.includes('big/0'))!;
  assert.deepEqual(m.volumes, ['big/0']);
  approx(m.cost.egress, 0.45); // 10 reserve + 25 = 35 GB, 5 over 30 × $0.09
  assert.ok(p.warnings.some((w) => /big\/0/.test(w)));
});

test('staging peak = largest stream held until received', () => {
  // Stream a: 5 × 6 GB = 30 GB on disk before it can be received.
  assert.equal(stagingPeak(chain()), 30 * GB);
  assert.equal(planRestore(chain(), start, tiny, P).stagingBytes, 30 * GB);
});

test('volumes out of chain order are rejected; packInOrder; describeMonths', () => {
  const v = chain().reverse();
  assert.throws(() => planRestore(v, start, tiny, P), UsageError);
  assert.deepEqual(packInOrder([5, 5, 11, 3, 3], 10), [[0, 1], [2], [3, 4]]);
  const d = describeMonths(planRestore(chain(), start, tiny, P));
  assert.equal(d.rows.length, 4);
  assert.equal(d.rows[3]![0], 'total');
  assert.equal(d.rows[0]![2], '18 GB');
});

test('downloads earlier this month leave less of its allowance for the plan', () => {
  assert.deepEqual(packInOrder([3, 5], 10, 6), [[0], [1]], 'what fits beside the used part stays in the first month');
  assert.deepEqual(packInOrder([5, 5, 11, 3, 3], 10, 6), [[], [0, 1], [2], [3, 4]], 'nothing fits: the first month stays empty');
  // 20 GB usable; 15 GB already downloaded in March: only 5 GB left, not a 6 GB volume.
  const p = planRestore(chain(), start, { ...tiny, mode: 'free', usedThisMonthGB: 15 }, P);
  assert.deepEqual(p.months.map((m) => m.volumes.length), [0, 3, 3, 2]);
  assert.equal(p.months[0]!.month, '2027-03');
  // --asap now: 48 GB on top of 15 GB used and the 10 GB reserve, 30 GB free → 43 GB billed.
  const now = planRestore(chain(), start, { ...tiny, mode: 'asap', usedThisMonthGB: 15 }, P);
  const none = planRestore(chain(), start, { ...tiny, mode: 'asap' }, P);
  assert.ok(now.months[0]!.cost.egress > none.months[0]!.cost.egress, `${now.months[0]!.cost.egress} > ${none.months[0]!.cost.egress}`);
});
