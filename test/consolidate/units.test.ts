/** The pieces of consolidate/cost that need no ZFS: the injected clock, sealed-size estimates, `zbk cost simulate`. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sealedPartSize } from '../../src/crypto/index.js';
import { DEFAULT_POLICIES, DEFAULT_WORKLOAD, simulate, simulationTable } from '../../src/planner/simulate.js';
import { priceTable } from '../../src/cost/prices.js';
import { clockFromEnv } from '../../src/services/consolidate/clock.js';
import { sealedBytesOf } from '../../src/services/consolidate/report.js';
import { simulateCosts } from '../../src/services/cost-simulate.js';
import { jsonOf, runZbk } from '../helpers/cli.js';

test('ZBK_NOW freezes the clock; unset is real time; garbage is a config error', () => {
  const frozen = clockFromEnv({ ZBK_NOW: '2027-05-01T12:00:00.000Z' });
  assert.equal(frozen().toISOString(), '2027-05-01T12:00:00.000Z');
  assert.equal(frozen().getTime(), frozen().getTime());
  const before = Date.now();
  const real = clockFromEnv({})().getTime();
  assert.ok(real >= before && real <= Date.now());
  assert.throws(() => clockFromEnv({ ZBK_NOW: 'yesterday' }), /ZBK_NOW must be an ISO 8601 date/);
  assert.throws(() => clockFromEnv({ ZBK_NOW: '2027-13-45' }), /ZBK_NOW/);
});

test('sealed size of a stream: whole parts plus a sealed remainder', () => {
  const part = 5 * 1024 * 1024;
  assert.equal(sealedBytesOf(0, part), 0);
  assert.equal(sealedBytesOf(2 * part, part), 2 * sealedPartSize(part));
  assert.equal(sealedBytesOf(2 * part + 10, part), 2 * sealedPartSize(part) + sealedPartSize(10));
  assert.ok(sealedBytesOf(part, part) > part, 'sealing adds overhead');
});

test('zbk cost simulate prints the policy table for the workload asked for', async () => {
  const start = new Date('2027-01-01T00:00:00Z');
  const mine = simulateCosts({ start, workload: { months: 24, initialGB: 100 } });
  const expected = simulationTable(DEFAULT_POLICIES.map((p) => simulate({ ...DEFAULT_WORKLOAD, months: 24, initialGB: 100 }, p, priceTable('us-east-1'), start)));
  assert.equal(mine.table, expected);
  assert.throws(() => simulateCosts({ start, workload: { churnPerMonth: Number('x') } }), /non-negative/);

  const r = await runZbk(['cost', 'simulate', '--months', '24', '--initial-gb', '100', '--json', '--config', '/nonexistent/zbk.toml'], { ZBK_NOW: start.toISOString() });
  // An explicitly named config that does not exist is an error, not silently the defaults.
  assert.equal(r.code, 3, r.stderr);
  const d = await runZbk(['cost', 'simulate', '--months', '24', '--initial-gb', '100', '--json'], { ZBK_NOW: start.toISOString(), ZBK_CONFIG: '/nonexistent/zbk.toml' });
  assert.equal(d.code, 0, d.stderr);
  assert.equal(jsonOf<{ table: string }>(d).table, expected);
});

test('zbk cost simulate --provider: the profile\'s minimum duration, part limit and restore terms', async () => {
  const start = new Date('2027-01-01T00:00:00Z');
  const policies = [{ kind: 'every-n', n: 30 } as const, { kind: 'zbk', horizonMonths: 24 } as const];
  const workload = { months: 3, initialGB: 100, growthGBPerMonth: 0, churnPerMonth: 0 };
  const gcs = simulateCosts({ start, provider: 'gcs-archive', workload, policies });
  assert.equal(gcs.provider, 'gcs-archive');
  const [monthly, zbk] = gcs.results as [(typeof gcs.results)[0], (typeof gcs.results)[0]];
  // The month-0 full deleted at 30 days pays 365 − 30 days of $0.0012/GB-month: 100 × 0.0012 × 335/30 = $1.34 (at 180 days it would be $0.60).
  assert.ok(monthly.earlyDeletion >= 1.34, `early deletion ${monthly.earlyDeletion}`);
  assert.equal(zbk.earlyDeletion, 0, 'zbk never deletes early');
  // No free egress on GCS: the restore is one month, with the $0.05/GB read fee.
  assert.equal(zbk.restoreMonths, 1);
  assert.ok(zbk.restoreCost >= 100 * 0.05);
  // Scaleway: 64 GiB volumes need 66 MiB parts to stay within 1,000 parts.
  const scw = simulateCosts({ start, provider: 'scaleway-glacier', workload: { ...workload, volumeBytes: 64 * 1024 ** 3 }, policies });
  assert.equal(scw.workload.partBytes, 66 * 1024 ** 2);
  const bad = await runZbk(['cost', 'simulate', '--provider', 'azure', '--config', '/nonexistent/zbk.toml'], {});
  assert.equal(bad.code, 3, 'the missing named config is reported first');
  const unknown = await runZbk(['cost', 'simulate', '--provider', 'azure'], { ZBK_CONFIG: '/nonexistent/default.toml' });
  assert.equal(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /unknown provider "azure" \(known: aws-deep-archive, /);
});
