import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_PRICES, priceTable, priceTableAgeMonths, priceTableWarnings, requestRateClass, stagingClass, storagePrice } from '../../src/cost/prices.js';

test('us-east-1 defaults match aws-facts.md', () => {
  const t = priceTable('us-east-1');
  assert.equal(t.asOf, '2026-11-01');
  assert.equal(t.deepArchiveGBMonth, 0.00099);
  assert.equal(t.standardGBMonth, 0.023);
  assert.equal(t.putPer1000.DEEP_ARCHIVE, 0.05);
  assert.equal(t.putPer1000.STANDARD, 0.005);
  assert.equal(t.getPer1000, 0.0004);
  assert.equal(t.listPer1000, 0.005);
  assert.deepEqual(t.restore, { Standard: { per1000: 0.1, perGB: 0.02 }, Bulk: { per1000: 0.025, perGB: 0.0025 } });
  assert.equal(t.freeEgressGBPerMonth, 100);
  assert.deepEqual(t.egressTiers.map((x) => x.perGB), [0.09, 0.085, 0.07, 0.05]);
  assert.equal(t.minStorageDays.DEEP_ARCHIVE, 180);
  assert.equal(t.minStorageDays.GLACIER_IR, 90);
  assert.equal(t.minStorageDays.STANDARD_IA, 30);
  assert.equal(t.archiveOverheadStandardBytes + t.archiveOverheadArchiveBytes, 40 * 1024);
  assert.equal(t.minBillableBytes.STANDARD_IA, 128 * 1024);
  // S3 User Guide: Create and UploadPart into Deep Archive at the Standard request rate, Complete at the class rate;
  // in-flight parts at Standard storage rates.
  assert.deepEqual(t.archiveUploadRequestRate, { CreateMultipartUpload: 'STANDARD', UploadPart: 'STANDARD', CompleteMultipartUpload: 'destination', PutObject: 'destination' });
  assert.equal(t.archiveStagingClass, 'STANDARD');
  assert.match(t.billingRulesSource, /User Guide.*2026-12/);
  assert.equal(requestRateClass(t, 'UploadPart', 'DEEP_ARCHIVE'), 'STANDARD');
  assert.equal(requestRateClass(t, 'CreateMultipartUpload', 'GLACIER'), 'STANDARD');
  assert.equal(requestRateClass(t, 'CompleteMultipartUpload', 'DEEP_ARCHIVE'), 'DEEP_ARCHIVE');
  // Not an archive class: every request at the class's own rate.
  assert.equal(requestRateClass(t, 'UploadPart', 'STANDARD_IA'), 'STANDARD_IA');
  assert.equal(stagingClass(t, 'DEEP_ARCHIVE'), 'STANDARD');
  assert.equal(stagingClass(t, 'STANDARD_IA'), 'STANDARD_IA');
});

test('flat overrides merge and are recorded; defaults stay untouched', () => {
  const t = priceTable('us-east-1', {
    deep_archive_gb_month: 0.002,
    put_per_1000_deep_archive: 0.06,
    restore_bulk_per_gb: 0.003,
    egress_per_gb: 0.08,
    free_egress_gb_month: 50,
    min_days_deep_archive: 90,
    upload_part_at_class_rate: 1,
    create_multipart_upload_at_class_rate: 1,
    complete_multipart_upload_at_class_rate: 0,
  });
  assert.equal(storagePrice(t, 'DEEP_ARCHIVE'), 0.002);
  assert.equal(t.putPer1000.DEEP_ARCHIVE, 0.06);
  assert.equal(t.restore.Bulk.perGB, 0.003);
  assert.deepEqual(t.egressTiers.map((x) => x.perGB), [0.08, 0.08, 0.08, 0.08]);
  assert.equal(t.freeEgressGBPerMonth, 50);
  assert.equal(t.minStorageDays.DEEP_ARCHIVE, 90);
  assert.deepEqual(t.archiveUploadRequestRate, { CreateMultipartUpload: 'destination', UploadPart: 'destination', CompleteMultipartUpload: 'STANDARD', PutObject: 'destination' });
  assert.equal(t.overridden.length, 9);
  assert.equal(DEFAULT_PRICES.archiveUploadRequestRate.UploadPart, 'STANDARD');
  assert.equal(DEFAULT_PRICES.deepArchiveGBMonth, 0.00099);
  assert.equal(DEFAULT_PRICES.egressTiers[0]!.perGB, 0.09);
  assert.equal(DEFAULT_PRICES.restore.Bulk.perGB, 0.0025);
});

test('unknown or negative override is a ConfigError', () => {
  assert.throws(() => priceTable('us-east-1', { deep_archive_gb_mnth: 1 }), ConfigError);
  assert.throws(() => priceTable('us-east-1', { get_per_1000: -1 }), ConfigError);
  // A rate class is 0 (STANDARD) or 1 (the destination class), nothing else.
  assert.throws(() => priceTable('us-east-1', { upload_part_at_class_rate: 0.5 }), /upload_part_at_class_rate: must be 1 .* or 0/);
});

test('age warning after N months, region warning without overrides', () => {
  const t = priceTable('us-east-1');
  // 2026-11-01 → 2027-12-15: 12 × 1 + (12 − 11) = 13 months.
  assert.equal(priceTableAgeMonths(t, new Date('2027-12-15T00:00:00Z')), 13);
  assert.equal(priceTableWarnings(t, new Date('2027-12-15T00:00:00Z'), 12).length, 1);
  // 2026-11-01 → 2027-10-31: 11 months.
  assert.equal(priceTableAgeMonths(t, new Date('2027-10-31T00:00:00Z')), 11);
  assert.deepEqual(priceTableWarnings(t, new Date('2027-10-31T00:00:00Z'), 12), []);
  assert.match(priceTableWarnings(t, new Date('2027-06-01T00:00:00Z'), 6)[0]!, /7 months old/);
  const eu = priceTable('eu-west-1');
  assert.match(priceTableWarnings(eu, new Date('2026-12-01T00:00:00Z'))[0]!, /no price table for eu-west-1/);
  assert.deepEqual(priceTableWarnings(priceTable('eu-west-1', { deep_archive_gb_month: 0.0018 }), new Date('2026-12-01T00:00:00Z')), []);
});
