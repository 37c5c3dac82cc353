/**
 * Hand-computed prices of an upload to Deep Archive, per the S3 User Guide
 * (reference/providers.md): CreateMultipartUpload and UploadPart at the S3
 * Standard request rate ($0.005 / 1,000), the single CompleteMultipartUpload
 * at the Deep Archive PUT rate ($0.05 / 1,000), metadata PutObject into
 * STANDARD; parts in flight billed at S3 Standard storage ($0.023 / GB-month).
 * And every place that prices an upload (push --dry-run, the push result,
 * a consolidation's new full, the simulation) gives the same figure.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { configFromObject } from '../../src/config/config.js';
import {
  estimatePushCost,
  multipartStagingCost,
  multipartStagingCostHours,
  pushStaging,
  stagingRate,
  uploadCost,
  uploadRequests,
} from '../../src/cost/model.js';
import { priceTable } from '../../src/cost/prices.js';
import { planConsolidation, type ConsolidationStream } from '../../src/planner/consolidate-plan.js';
import { DEFAULT_WORKLOAD, simulate } from '../../src/planner/simulate.js';
import { dryRunResult, pushedResult } from '../../src/services/push/result.js';
import { approx, DA_OVERHEAD_MONTH } from './approx.js';

const P = priceTable('us-east-1');
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;

// 1 TiB in 32 MiB parts and 4 GiB volumes (the defaults): 2^40 / 2^25 = 32,768 parts, 2^40 / 2^32 = 256 volumes.
const PARTS = TiB / (32 * MiB);
const VOLUMES = TiB / (4 * GiB);
// Create 256 × $0.005 = $1.28, UploadPart 32,768 × $0.005 = $163.84, Complete 256 × $0.05 = $12.80, per 1,000:
// $0.00128 + $0.16384 + $0.0128 = $0.17792; + 2 metadata PUTs × $0.005 / 1,000 = $0.00001 → $0.17793.
const DATA_REQUESTS = 0.00128 + 0.16384 + 0.0128;
const UPLOAD = DATA_REQUESTS + 0.00001;

test('1 TiB in 32 MiB parts and 4 GiB volumes: requests by operation × their rates', () => {
  assert.equal(PARTS, 32_768);
  assert.equal(VOLUMES, 256);
  const r = uploadRequests(VOLUMES, PARTS, P).byOperation;
  assert.deepEqual(
    [r.CreateMultipartUpload, r.UploadPart, r.CompleteMultipartUpload].map((x) => [x.count, x.rateClass, x.per1000]),
    [
      [256, 'STANDARD', 0.005],
      [32_768, 'STANDARD', 0.005],
      [256, 'DEEP_ARCHIVE', 0.05],
    ],
  );
  approx(r.CreateMultipartUpload.cost, 0.00128);
  approx(r.UploadPart.cost, 0.16384);
  approx(r.CompleteMultipartUpload.cost, 0.0128);

  const e = estimatePushCost({ bytes: TiB, parts: PARTS, volumes: VOLUMES, volumeBytes: 4 * GiB }, P);
  approx(e.oneTime.dataRequests, DATA_REQUESTS);
  approx(e.oneTime.metadataRequests, 0.00001);
  approx(e.oneTime.total, UPLOAD);
  // Storage: 1,099.511627776 GB × $0.00099 = $1.08851651149824 a month, + 256 × 40 KB overhead.
  approx(e.addedMonthly.data, 1.08851651149824);
  approx(e.addedMonthly.overhead, 256 * DA_OVERHEAD_MONTH);

  // The old default (every request at the Deep Archive rate): (2 × 256 + 32,768) × $0.05 / 1,000 = $1.664 (+ $0.00001),
  // 9.35× the billed figure.
  const old = priceTable('us-east-1', { create_multipart_upload_at_class_rate: 1, upload_part_at_class_rate: 1 });
  approx(estimatePushCost({ bytes: TiB, parts: PARTS, volumes: VOLUMES }, old).oneTime.total, 1.664 + 0.00001);
});

test('staging: N bytes in flight for H hours at the Standard storage rate', () => {
  // 3 GiB for 36 h: 3.221225472 GB × $0.023 × 36 / 720 = $0.0037044092928.
  approx(multipartStagingCostHours(3 * GiB, 36, P), 0.0037044092928);
  // The same in days: 1.5 days of a 30-day month.
  approx(multipartStagingCost(3 * GiB, 1.5, P), 0.0037044092928);
  // 500 MB for 90 minutes: 0.5 × $0.023 × 1.5 / 720 = $0.0000239583…
  approx(multipartStagingCostHours(500e6, 1.5, P), (0.5 * 0.023 * 1.5) / 720);
  // Into Glacier too (an archive class): Standard rate. Into Standard-IA: its own rate, $0.0125.
  approx(multipartStagingCostHours(3 * GiB, 36, P, 'GLACIER'), 0.0037044092928);
  approx(multipartStagingCostHours(3 * GiB, 36, P, 'STANDARD_IA'), (3.221225472 * 0.0125 * 36) / 720);
  // Per month / day / hour of 10 GB in flight: $0.23, $0.0076667, $0.00031944.
  const r = stagingRate(10e9, P);
  approx(r.monthly, 0.23);
  approx(r.daily, 0.23 / 30);
  approx(r.hourly, 0.23 / 720);
});

test('staging of a push per hour of upload: half a volume in flight on average', () => {
  // 4 GiB volumes: 2 GiB = 2.147483648 GB × $0.023 = $0.049392123904 a month in flight → /30 a day, /720 an hour.
  const s = estimatePushCost({ bytes: TiB, parts: PARTS, volumes: VOLUMES, volumeBytes: 4 * GiB, uploadHours: 24 }, P).staging;
  assert.equal(s.averageBytes, 2 * GiB);
  assert.equal(s.peakBytes, 4 * GiB);
  approx(s.perDay, 0.049392123904 / 30);
  approx(s.perHour, 0.049392123904 / 720);
  approx(s.total!, 0.049392123904 / 30, '24 hours of upload');
  // Unequal volumes: 10 GiB in 4 GiB volumes is 4 + 4 + 2 GiB; Σv² / (2 Σv) = (16 + 16 + 4) / 20 GiB = 1.8 GiB.
  const u = pushStaging({ bytes: 10 * GiB, volumes: 3, volumeBytes: 4 * GiB }, P);
  approx(u.averageBytes, 1.8 * GiB);
  assert.equal(u.peakBytes, 4 * GiB);
});

test('push --dry-run and the push result price the upload with the same function', () => {
  const config = configFromObject(
    { store: { url: 'file:///nonexistent/store' }, state_dir: '/nonexistent/state', upload: { part_size: '32MiB', volume_size: '4GiB' } } as never,
    join('/nonexistent', 'config.toml'),
  );
  const target = { name: 'tank/photos@s1', shortName: 's1', guid: 1n, createtxg: 1n, creation: 0, referenced: 0 };
  const dry = dryRunResult(config, { dataset: 'tank/photos', target, base: null, reason: null, sendFlags: [], estimate: TiB, started: Date.now() });
  approx(dry.estimatedUploadCost, UPLOAD);
  approx(dry.estimatedStagingCostPerDay, 0.049392123904 / 30);
  const upload = {
    volumes: Array.from({ length: VOLUMES }, () => ({ partCount: PARTS / VOLUMES })),
    plaintextSize: TiB,
    storedSize: TiB,
    partsUploaded: PARTS,
    partsSkipped: 0,
    volumesSkipped: 0,
  };
  const pushed = pushedResult(config, 'tank/photos', { streamId: 'x', from: null, to: target } as never, { upload, estimatedBytes: TiB, sendFlags: [] } as never, Date.now(), {
    resumed: false,
    partsSkipped: 0,
    reason: null,
  });
  approx(pushed.estimatedUploadCost, UPLOAD);
  approx(pushed.estimatedMonthlyCost, 1.08851651149824 + 256 * DA_OVERHEAD_MONTH);
});

test("consolidation's new full and the simulation price the upload as a push", () => {
  const vol = (key: string, bytes: number, at: string): ConsolidationStream['volumes'][number] => ({ key, bytes, uploadedAt: new Date(at) });
  const streams: ConsolidationStream[] = [
    { streamId: 'F', kind: 'full', fromGuid: null, toGuid: 'g0', storedBytes: TiB, volumes: [vol('F/0', TiB, '2026-01-01T00:00:00Z')] },
    { streamId: 'I', kind: 'incremental', fromGuid: 'g0', toGuid: 'g1', storedBytes: 1e9, volumes: [vol('I/0', 1e9, '2026-02-01T00:00:00Z')] },
  ];
  const plan = planConsolidation({
    dataset: 'tank/photos',
    streams,
    keptGuids: ['g1'],
    latestGuid: 'g1',
    newFullBytes: TiB,
    now: new Date('2027-01-01T00:00:00Z'),
    prices: P,
    volumeBytes: 4 * GiB,
    partBytes: 32 * MiB,
  });
  assert.deepEqual([plan.newFull.volumes, plan.newFull.parts], [VOLUMES, PARTS]);
  approx(plan.newFull.uploadCost, UPLOAD);
  approx(plan.newFull.uploadCost, uploadCost({ volumes: VOLUMES, parts: PARTS }, P).total);

  // One simulated month is the first full alone: 500 GB in 4 GiB volumes of 64 MiB parts = 117 volumes
  // (116 full + 1,783,793,664 B), 116 × 64 + 27 = 7,451 parts:
  // (117 + 7,451) × $0.005 / 1,000 + 117 × $0.05 / 1,000 + $0.00001 = $0.03784 + $0.00585 + $0.00001 = $0.0437.
  const one = simulate({ ...DEFAULT_WORKLOAD, months: 1 }, { kind: 'never' }, P, new Date('2027-01-01T00:00:00Z'));
  approx(one.requests, 0.0437);
});
