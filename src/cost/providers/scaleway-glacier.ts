/** Scaleway Object Storage, class GLACIER (fr-par, nl-ams): EUR prices, at most 1,000 parts per upload. */
import type { ProviderProfile } from './types.js';

const MiB = 1024 * 1024;

export const scalewayGlacier: ProviderProfile = {
  name: 'scaleway-glacier',
  description: 'Scaleway Object Storage GLACIER (fr-par, nl-ams): RestoreObject with Days, 75 GB/month free egress, 1,000-part uploads',
  provider: 'Scaleway',
  regions: ['fr-par', 'nl-ams'],
  endpoint: 'https://s3.{region}.scw.cloud',
  dataStorageClass: 'GLACIER',
  metaStorageClass: 'STANDARD',
  restore: { semantics: 'days-only', tiers: [], leadDays: 1, note: 'RestoreObject with Days; minutes to 24 h (providers.md ✔)' },
  multipart: { maxParts: 1_000, minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB },
  addressing: { pathStyle: true, checksumCalculation: 'when_required', note: 'path style; SDK default checksums off (S3-compatible services may reject them)' },
  currency: 'EUR',
  // An assumed rate, not a quote: set [prices] eur_to_usd to today's.
  eurToUsd: 1.1,
  prices: {
    provider: 'scaleway-glacier',
    regions: ['fr-par', 'nl-ams'],
    asOf: '2026-12-01',
    source:
      'providers.md 2026-12: GLACIER ~EUR 0.002/GB-month ✔, restore EUR 0.009/GB ✔, 75 GB/month free egress then EUR 0.01/GB ✔, 1,000 parts ✔; minimum duration not stated ✖ (0); STANDARD storage EUR 0.0146 and free requests are not in providers.md (Scaleway list prices, unverified); per-object overhead not stated (0)',
    deepArchiveGBMonth: 0.002,
    glacierGBMonth: 0.002,
    glacierIRGBMonth: 0.0146,
    standardIAGBMonth: 0.0146,
    standardGBMonth: 0.0146,
    putPer1000: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    getPer1000: 0,
    listPer1000: 0,
    restore: { Standard: { per1000: 0, perGB: 0.009 }, Bulk: { per1000: 0, perGB: 0.009 } },
    retrievalPerGB: 0,
    egressTiers: [{ uptoGB: null, perGB: 0.01 }],
    freeEgressGBPerMonth: 75,
    minStorageDays: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveOverheadStandardBytes: 0,
    archiveOverheadArchiveBytes: 0,
    minBillableBytes: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveUploadRequestRate: { CreateMultipartUpload: 'destination', UploadPart: 'destination', CompleteMultipartUpload: 'destination', PutObject: 'destination' },
    archiveStagingClass: 'STANDARD',
    billingRulesSource: 'not stated by Scaleway (providers.md ✖): in-flight parts assumed billed at STANDARD, the conservative reading',
  },
};
