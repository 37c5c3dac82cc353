import { test } from 'node:test';
import assert from 'node:assert/strict';
import { priceTable } from '../../src/cost/prices.js';
import { DEFAULT_WORKLOAD, simulate } from '../../src/planner/simulate.js';

const P = priceTable('us-east-1');
const start = new Date('2027-01-01T00:00:00Z');
// Three years keep the test fast; same shape as the 10-year run in docs/COSTS.md.
const w = { ...DEFAULT_WORKLOAD, months: 36 };

test('simulation is deterministic', () => {
  assert.deepEqual(simulate(w, { kind: 'zbk', horizonMonths: 24 }, P, start), simulate(w, { kind: 'zbk', horizonMonths: 24 }, P, start));
});

test('zbk never pays early deletion and beats naive monthly fulls', () => {
  const zbk = simulate(w, { kind: 'zbk', horizonMonths: 24 }, P, start);
  const monthly = simulate(w, { kind: 'every-n', n: 30 }, P, start);
  const never = simulate(w, { kind: 'never' }, P, start);
  assert.equal(zbk.earlyDeletion, 0);
  assert.ok(monthly.earlyDeletion > 0);
  assert.ok(zbk.total < monthly.total);
  assert.ok(zbk.restoreGB <= never.restoreGB);
  // The never policy stores exactly the full + every incremental: 500 GB + Σ_{m=1..35} (10 + 0.01 × (500 + 10(m−1)))
  // = 500 + 35 × 15 + 0.1 × (0 + 1 + … + 34) = 500 + 525 + 59.5 = 1084.5 GB
  assert.ok(Math.abs(never.storedGBAtEnd - 1084.5) < 1e-6);
});

test('append-only data: zbk does not consolidate', () => {
  const r = simulate({ ...w, churnPerMonth: 0 }, { kind: 'zbk', horizonMonths: 24 }, P, start);
  assert.equal(r.fulls, 1);
});

test('the planner beats re-fulling at first payback and every fixed interval within 0.5 % (3 % churn, 5 years)', () => {
  const churny = { ...w, months: 60, churnPerMonth: 0.03 };
  const zbk = simulate(churny, { kind: 'zbk', horizonMonths: 24 }, P, start);
  const payback = simulate(churny, { kind: 'zbk', horizonMonths: 24, timing: 'payback' }, P, start);
  assert.ok(zbk.total < payback.total * 0.9, `interval $${zbk.total.toFixed(2)} vs payback $${payback.total.toFixed(2)}`);
  assert.equal(zbk.earlyDeletion, 0);
  for (const months of [3, 5, 6, 7, 8, 9, 12]) {
    const fixed = simulate(churny, { kind: 'max-age', months }, P, start);
    assert.ok(zbk.total <= fixed.total * 1.005, `zbk $${zbk.total.toFixed(2)} vs a full every ${months} months $${fixed.total.toFixed(2)}`);
  }
});
