import { test } from 'node:test';
import assert from 'node:assert/strict';
import { priceTable } from '../../src/cost/prices.js';
import {
  earlyDeletionCharge,
  egressCost,
  estimatePushCost,
  monthlyStorageCost,
  multipartStagingCost,
  objectMonthlyCost,
  restoreCost,
  storageCostBetween,
  uploadRequestCost,
  uploadRequests,
} from '../../src/cost/model.js';
import { approx, DA_OVERHEAD_MONTH } from './approx.js';

const P = priceTable('us-east-1');
const GB = 1e9;

test('monthly storage: data at class rate + 40 KB archive overhead', () => {
  const c = objectMonthlyCost({ bytes: 500 * GB, storageClass: 'DEEP_ARCHIVE' }, P);
  approx(c.data, 0.495, 'data'); // 500 GB × $0.00099 = $0.495
  approx(c.overhead, DA_OVERHEAD_MONTH, 'overhead'); // 8 KB × $0.023 + 32 KB × $0.00099
  approx(c.total, 0.49500022085632);
  // STANDARD has no archive overhead: 2 GB × $0.023 = $0.046
  approx(objectMonthlyCost({ bytes: 2 * GB, storageClass: 'STANDARD' }, P).total, 0.046);
  // IA bills 1,000 B as 128 KB: 131072 / 1e9 × $0.0125 = $0.0000016384
  approx(objectMonthlyCost({ bytes: 1000, storageClass: 'STANDARD_IA' }, P).total, 0.0000016384);
});

test('monthly storage of a set, filtered by an instant', () => {
  const objs = [
    { bytes: 100 * GB, storageClass: 'DEEP_ARCHIVE' as const, uploadedAt: new Date('2027-01-01Z'), deletedAt: new Date('2027-03-01Z') },
    { bytes: 10 * GB, storageClass: 'DEEP_ARCHIVE' as const, uploadedAt: new Date('2027-02-01Z') },
  ];
  // All: 110 GB × $0.00099 = $0.1089, + 2 overheads
  approx(monthlyStorageCost(objs, P).total, 0.1089 + 2 * DA_OVERHEAD_MONTH);
  // 2027-04-01: only the 10 GB object: $0.0099 + 1 overhead
  approx(monthlyStorageCost(objs, P, new Date('2027-04-01Z')).total, 0.0099 + DA_OVERHEAD_MONTH);
  // Window of 15 days for 30 GB STANDARD: 30 × $0.023 × 15/30 = $0.345
  const std = [{ bytes: 30 * GB, storageClass: 'STANDARD' as const, uploadedAt: new Date('2027-01-01Z') }];
  approx(storageCostBetween(std, P, new Date('2026-12-01Z'), new Date('2027-01-16Z')), 0.345);
});

test('early deletion: remaining days pro rata at 30-day months', () => {
  // 100 GB DA deleted at 60 days: (100e9 + 32768) B = 100.000032768 GB × $0.00099 × (180 − 60)/30
  // = 100.000032768 × 0.00396 = $0.39600012976128
  approx(earlyDeletionCharge({ bytes: 100 * GB, storageClass: 'DEEP_ARCHIVE' }, 60, P), 0.39600012976128);
  assert.equal(earlyDeletionCharge({ bytes: 100 * GB, storageClass: 'DEEP_ARCHIVE' }, 180, P), 0);
  assert.equal(earlyDeletionCharge({ bytes: 100 * GB, storageClass: 'DEEP_ARCHIVE' }, 400, P), 0);
  // 1 GB Glacier IR at 30 days: 1 × $0.004 × (90 − 30)/30 = $0.008
  approx(earlyDeletionCharge({ bytes: GB, storageClass: 'GLACIER_IR' }, 30, P), 0.008);
});

test('multipart requests into Deep Archive: Create and UploadPart at the Standard rate, Complete at the class rate', () => {
  // 3 uploads, 100 parts: Create 3 × $0.005 + UploadPart 100 × $0.005 + Complete 3 × $0.05, per 1,000
  // = ($0.015 + $0.5 + $0.15) / 1000 = $0.000665
  const r = uploadRequests(3, 100, P);
  assert.equal(r.atClassRate, 3);
  assert.equal(r.atStandardRate, 103);
  assert.deepEqual(
    Object.entries(r.byOperation).map(([op, x]) => [op, x.count, x.rateClass, x.per1000]),
    [
      ['CreateMultipartUpload', 3, 'STANDARD', 0.005],
      ['UploadPart', 100, 'STANDARD', 0.005],
      ['CompleteMultipartUpload', 3, 'DEEP_ARCHIVE', 0.05],
    ],
  );
  approx(r.byOperation.UploadPart.cost, 0.0005);
  approx(uploadRequestCost(3, 100, 'DEEP_ARCHIVE', P), 0.000665);
  // The old reading (every request at the Deep Archive rate): 106 × $0.05/1000 = $0.0053, 8× more.
  const old = priceTable('us-east-1', { create_multipart_upload_at_class_rate: 1, upload_part_at_class_rate: 1 });
  approx(uploadRequestCost(3, 100, 'DEEP_ARCHIVE', old), 0.0053);
  // Into Standard-IA (not an archive class) every request is at the IA rate: 106 × $0.01/1000 = $0.00106.
  approx(uploadRequestCost(3, 100, 'STANDARD_IA', P), 0.00106);
  assert.deepEqual([uploadRequests(3, 100, P, 'STANDARD_IA').atClassRate, uploadRequests(3, 100, P, 'STANDARD_IA').atStandardRate], [106, 0]);
});

test('egress: free allowance, already used, tiers', () => {
  approx(egressCost(80, P), 0); // under 100 GB
  approx(egressCost(250, P), 13.5); // (250 − 100) × $0.09
  approx(egressCost(95, P, 100, 10), 0.45); // 10 + 95 = 105 → 5 GB × $0.09
  approx(egressCost(30, P, 100, 120), 2.7); // all 30 GB billable × $0.09
  // 10,440 GB: 10,340 billable = 10,240 × $0.09 ($921.60) + 100 × $0.085 ($8.50) = $930.10
  approx(egressCost(10_440, P), 930.1);
});

test('restore cost: retrieval, requests, temp copy, egress', () => {
  const c = restoreCost({ bytes: 80 * GB, objects: 20, tier: 'Bulk', days: 10 }, P);
  approx(c.retrieval, 0.2); // 80 × $0.0025
  approx(c.requests, 0.000508); // 20 × ($0.025 + $0.0004) / 1000
  approx(c.tempStorage, 0.6133333333333333); // 80 × $0.023 × 10/30
  approx(c.egress, 0);
  approx(c.total, 0.2 + 0.000508 + 0.6133333333333333);
  // Standard tier, 150 GB, 1 object, 3 days, in a month with nothing used:
  // 150 × $0.02 = $3; $0.0001 + $0.0000004; 150 × 0.023 × 3/30 = $0.345; 50 × $0.09 = $4.5
  const s = restoreCost({ bytes: 150 * GB, objects: 1, tier: 'Standard', days: 3 }, P);
  approx(s.total, 3 + 0.0001004 + 0.345 + 4.5);
});

test('multipart staging at Standard rate', () => {
  approx(multipartStagingCost(5 * GB, 15, P), 0.0575); // 5 × $0.023 × 15/30
});

test('estimatePushCost: one-time requests, monthly storage, 180-day commitment', () => {
  const e = estimatePushCost({ bytes: 10 * GB, parts: 150, volumes: 3 }, P);
  // (3 Create + 150 UploadPart) × $0.005/1000 + 3 Complete × $0.05/1000 = $0.000765 + $0.00015
  approx(e.oneTime.dataRequests, 0.000915);
  approx(e.oneTime.metadataRequests, 0.00001); // 2 × $0.005/1000
  approx(e.oneTime.total, 0.000925);
  approx(e.addedMonthly.data, 0.0099); // 10 × $0.00099
  approx(e.addedMonthly.overhead, 3 * DA_OVERHEAD_MONTH);
  // (10e9 + 3 × 32768) B = 10.000098304 GB × $0.00099 × 180/30 = $0.05940058392576
  approx(e.minimumCommitment, 0.05940058392576);
  assert.deepEqual([e.requests.atClassRate, e.requests.atStandardRate, e.requests.metadata], [3, 153, 2]);
  // Staging while it uploads: 3 equal volumes of 10/3 GB, on average half of one in flight:
  // 5/3 GB × $0.023 = $0.0383333…/month → /30 per day, /720 per hour.
  approx(e.staging.averageBytes, (10 * GB) / 6);
  approx(e.staging.perDay, ((5 / 3) * 0.023) / 30);
  approx(e.staging.perHour, ((5 / 3) * 0.023) / 720);
  assert.equal(e.staging.total, null);
});
