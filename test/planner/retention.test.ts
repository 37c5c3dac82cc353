import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyRetention, type PushedSnapshot } from '../../src/planner/retention.js';

const snap = (guid: string, iso: string): PushedSnapshot => ({ guid, name: `auto-${iso}`, creation: new Date(iso) });
// Two per month in Nov 2025 … Mar 2026, given out of order.
const snaps = [
  snap('9', '2026-03-20T00:00:00Z'),
  snap('1', '2025-11-01T00:00:00Z'),
  snap('2', '2025-11-20T00:00:00Z'),
  snap('3', '2025-12-01T00:00:00Z'),
  snap('4', '2025-12-31T23:00:00Z'),
  snap('5', '2026-01-05T00:00:00Z'),
  snap('6', '2026-01-25T00:00:00Z'),
  snap('7', '2026-02-10T00:00:00Z'),
  snap('8', '2026-03-01T00:00:00Z'),
];

test('the latest is always kept, even with every rule at 0', () => {
  const r = applyRetention(snaps, { keepLast: 0, keepMonthly: 0, keepYearly: 0 });
  assert.deepEqual([...r.keptGuids], ['9']);
  assert.deepEqual(r.kept[0]!.reasons, ['latest']);
  assert.equal(r.dropped.length, 8);
});

test('keep-last and keep-monthly: newest of each of the last N months with snapshots', () => {
  const r = applyRetention(snaps, { keepLast: 2, keepMonthly: 3, keepYearly: 0 });
  // last 2: 9, 8; monthly: Mar → 9, Feb → 7, Jan → 6.
  assert.deepEqual([...r.keptGuids].sort(), ['6', '7', '8', '9']);
  assert.deepEqual(r.kept.find((k) => k.guid === '9')!.reasons, ['latest', 'last 1', 'monthly 2026-03']);
  assert.deepEqual(r.kept.find((k) => k.guid === '6')!.reasons, ['monthly 2026-01']);
});

test('keep-yearly: newest of each year', () => {
  const r = applyRetention(snaps, { keepLast: 1, keepMonthly: 0, keepYearly: 5 });
  // 2026 → 9; 2025 → 4 (Dec 31, 23:00 UTC is still 2025).
  assert.deepEqual([...r.keptGuids].sort(), ['4', '9']);
  assert.deepEqual(r.kept.find((k) => k.guid === '4')!.reasons, ['yearly 2025']);
});

test('empty input keeps nothing', () => {
  assert.equal(applyRetention([], { keepLast: 3, keepMonthly: 3, keepYearly: 3 }).kept.length, 0);
});
