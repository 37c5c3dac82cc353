/**
 * The restore plan's warnings on small repositories: sizes and amounts are
 * shown with enough precision to mean something ("25 MB exceeds 20 MB", not
 * "0.0 GB exceeds 0.02 GB"; "$0.00 is below $0.00012", not "$0.00 is below $0.00").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { priceTable } from '../../src/cost/prices.js';
import { describeMonths, planRestore, type RestoreVolume } from '../../src/planner/restore-plan.js';

const P = priceTable('us-east-1');
const MB = 1e6;
const start = new Date('2027-03-10T00:00:00Z');

function small(): RestoreVolume[] {
  return [
    { key: 'a/0', streamId: 'a', streamIndex: 0, volumeIndex: 0, bytes: 25 * MB, plaintextBytes: 25 * MB - 100 },
    { key: 'a/1', streamId: 'a', streamIndex: 0, volumeIndex: 1, bytes: 5 * MB, plaintextBytes: 5 * MB - 100 },
  ];
}

test('a volume over a tiny allowance: both sizes readable and different', () => {
  const p = planRestore(small(), start, { freeEgressGB: 0.02, reserveGB: 0 }, P);
  const w = p.warnings.find((x) => x.includes('exceeds the usable allowance'));
  assert.equal(w, 'volume a/0 (25 MB) exceeds the usable allowance of 20 MB: it gets a month of its own and its egress is charged');
  assert.doesNotMatch(p.warnings.join('\n'), /0\.0 GB/);
});

test('a budget below a schedule that costs less than a cent: the amounts are shown, not $0.00 twice', () => {
  const p = planRestore(small(), start, { freeEgressGB: 0.02, reserveGB: 0, mode: 'budget', budgetUSD: 0 }, P);
  assert.equal(p.withinBudget, false);
  assert.ok(p.totalCost > 0 && p.totalCost < 0.01, `cheapest ${p.totalCost}`);
  const w = p.warnings.find((x) => x.startsWith('budget '));
  assert.ok(w, p.warnings.join('; '));
  const m = /^budget (\$\S+) is below the cheapest schedule \((\$\S+)\)/.exec(w);
  assert.ok(m, w);
  assert.equal(m[1], '$0.00');
  assert.notEqual(m[2], '$0.00', w);
  assert.ok(Math.abs(Number(m[2]!.slice(1)) - p.totalCost) / p.totalCost < 0.05, `${m[2]} shows the cost ${p.totalCost}`);
});

test('the plan table shows small volumes and tiny costs as they are', () => {
  const d = describeMonths(planRestore(small(), start, { freeEgressGB: 1, reserveGB: 0 }, P));
  assert.equal(d.rows[0]![2], '30 MB');
  assert.notEqual(d.rows[0]![5], '$0.00', 'retrieval of 30 MB costs a fraction of a cent');
});
