import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cheapestInterval, cycleCost, MAX_INTERVAL_DAYS, type IntervalInput } from '../../src/planner/full-interval.js';

// Deep Archive-like: $0.00099/GB-month, 180-day minimum; a 2 TB full; 1.33 GB a day of
// incrementals of which 0.67 GB is waste (1 % churn of 2 TB a month, 20 GB/month growth).
const base: IntervalInput = {
  fullBytes: 2000e9,
  wasteBytesPerDay: 20e9 / 30,
  incrementalBytesPerDay: 40e9 / 30,
  pricePerByteDay: 0.00099 / 1e9 / 30,
  uploadCost: 0.01,
  minDays: 180,
};

test('cycle cost: the waste, the old full and the old incrementals kept to their minimum, the upload', () => {
  const p = base.pricePerByteDay;
  // T = 100 < D: R + p (a·100²/2 + F·80 + i·(180·100 − 100²/2))
  const a = base.wasteBytesPerDay;
  const i = base.incrementalBytesPerDay;
  const F = base.fullBytes;
  assert.ok(Math.abs(cycleCost(base, 100) - (0.01 + p * (a * 5000 + F * 80 + i * (18000 - 5000)))) < 1e-9);
  // T = 300 ≥ D: the old full goes at once; incrementals younger than 180 days stay: i·180²/2
  assert.ok(Math.abs(cycleCost(base, 300) - (0.01 + p * (a * 45000 + i * 16200))) < 1e-9);
});

test('past the minimum the cheapest interval is √((2R/p + i·D²) / a), to the day', () => {
  const { pricePerByteDay: p, uploadCost: R, incrementalBytesPerDay: i, minDays: D, wasteBytesPerDay: a } = base;
  const exact = Math.sqrt((2 * R / p + i * D * D) / a);
  const got = cheapestInterval(base).days;
  assert.ok(Math.abs(got - exact) <= 1, `${got} vs ${exact}`);
  assert.ok(got > 180);
});

test('a full is never due before the old one may be deleted for free, however fast the waste grows', () => {
  for (const waste of [1e9, 50e9, 500e9]) {
    const d = cheapestInterval({ ...base, wasteBytesPerDay: waste, incrementalBytesPerDay: waste }).days;
    assert.ok(d >= base.minDays, `waste ${waste}/day: ${d} days`);
  }
});

test('no minimum duration and cheap uploads: the interval shrinks to days', () => {
  const d = cheapestInterval({ ...base, minDays: 0, uploadCost: 0.0005 }).days;
  // √(2R/(p·a)) = √(2 × 0.0005 / (3.3e-14 × 6.67e8)) ≈ 6.7 days
  assert.ok(d >= 6 && d <= 8, `${d}`);
});

test('append-only (no waste): never', () => {
  assert.equal(cheapestInterval({ ...base, wasteBytesPerDay: 0 }).days, MAX_INTERVAL_DAYS);
});
