/** OVHcloud Cold Archive: RestoreObject with Days only (no Tier), maps to DEEP_ARCHIVE, 180-day minimum. */
import type { ProviderProfile } from './types.js';

const MiB = 1024 * 1024;

export const ovhColdArchive: ProviderProfile = {
  name: 'ovh-cold-archive',
  description: 'OVHcloud Cold Archive: RestoreObject with Days only (no Tier), restores within 48 h, 180-day minimum',
  provider: 'OVHcloud',
  regions: ['rbx-archive'],
  endpoint: 'https://s3.{region}.io.cloud.ovh.net',
  dataStorageClass: 'DEEP_ARCHIVE',
  metaStorageClass: 'STANDARD',
  restore: { semantics: 'days-only', tiers: [], leadDays: 2, note: 'RestoreObject with Days only, no Tier; the restored copy is billed at the Standard rate for the Days asked, up front (providers.md ✔)' },
  multipart: { maxParts: 10_000, minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB },
  addressing: { pathStyle: true, checksumCalculation: 'when_required', note: 'path style; SDK default checksums off (S3-compatible services may reject them)' },
  currency: 'EUR',
  // An assumed rate, not a quote: set [prices] eur_to_usd to today's.
  eurToUsd: 1.1,
  prices: {
    provider: 'ovh-cold-archive',
    regions: ['rbx-archive'],
    asOf: '2026-12-01',
    source:
      'providers.md 2026-12: 180 d minimum ✔, Days-only restore ✔, in-progress parts at Standard ✔; storage, egress and request prices not found (✖): EUR 0.002/GB-month archive, EUR 0.007/GB-month Standard, EUR 0.01/GB egress, free requests, the 10,000-part limit and the rbx-archive region/endpoint are zbk estimates — override them in [prices]',
    deepArchiveGBMonth: 0.002,
    glacierGBMonth: 0.002,
    glacierIRGBMonth: 0.007,
    standardIAGBMonth: 0.007,
    standardGBMonth: 0.007,
    putPer1000: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    getPer1000: 0,
    listPer1000: 0,
    restore: { Standard: { per1000: 0, perGB: 0 }, Bulk: { per1000: 0, perGB: 0 } },
    retrievalPerGB: 0,
    egressTiers: [{ uptoGB: null, perGB: 0.01 }],
    freeEgressGBPerMonth: 0,
    minStorageDays: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 180, DEEP_ARCHIVE: 180 },
    archiveOverheadStandardBytes: 0,
    archiveOverheadArchiveBytes: 0,
    minBillableBytes: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveUploadRequestRate: { CreateMultipartUpload: 'destination', UploadPart: 'destination', CompleteMultipartUpload: 'destination', PutObject: 'destination' },
    archiveStagingClass: 'STANDARD',
    billingRulesSource: 'providers.md 2026-12: OVH bills in-progress parts at Standard ✔',
  },
};
