/** Hot S3-compatible stores (Backblaze B2, Wasabi, Cloudflare R2, MinIO, Hetzner): no restore step, no minimum unless configured. */
import type { ProviderProfile } from './types.js';

const MiB = 1024 * 1024;

export const s3Hot: ProviderProfile = {
  name: 's3-hot',
  description: 'hot S3-compatible storage (B2, Wasabi, R2, MinIO, Hetzner): no restore step, no minimum duration unless configured',
  provider: 'any S3-compatible service',
  regions: ['us-west-004'],
  endpoint: 'https://s3.{region}.backblazeb2.com',
  dataStorageClass: 'STANDARD',
  metaStorageClass: 'STANDARD',
  restore: { semantics: 'none', tiers: [], note: 'hot storage: everything is readable at once' },
  multipart: { maxParts: 10_000, minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB },
  addressing: { pathStyle: true, checksumCalculation: 'when_required', note: 'path style (MinIO needs it); SDK default checksums off (S3-compatible services may reject them)' },
  currency: 'USD',
  prices: {
    provider: 's3-hot',
    regions: ['us-west-004'],
    asOf: '2026-12-01',
    source:
      'providers.md 2026-12: hot only $0.006-0.010/GB-month (B2 $0.006 used), B2 egress $0.01/GB (Wasabi, R2, e2 free: set egress_per_gb = 0), Wasabi 90 d minimum (set min_days_standard = 90), R2 IA 30 d; request prices (B2: PUT free, GET $0.0004/1,000, LIST $0.004/1,000) are not in providers.md (B2 list prices, unverified)',
    deepArchiveGBMonth: 0.006,
    glacierGBMonth: 0.006,
    glacierIRGBMonth: 0.006,
    standardIAGBMonth: 0.006,
    standardGBMonth: 0.006,
    putPer1000: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    getPer1000: 0.0004,
    listPer1000: 0.004,
    restore: { Standard: { per1000: 0, perGB: 0 }, Bulk: { per1000: 0, perGB: 0 } },
    retrievalPerGB: 0,
    egressTiers: [{ uptoGB: null, perGB: 0.01 }],
    freeEgressGBPerMonth: 0,
    minStorageDays: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveOverheadStandardBytes: 0,
    archiveOverheadArchiveBytes: 0,
    minBillableBytes: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveUploadRequestRate: { CreateMultipartUpload: 'destination', UploadPart: 'destination', CompleteMultipartUpload: 'destination', PutObject: 'destination' },
    archiveStagingClass: 'STANDARD',
    billingRulesSource: 'hot storage: parts are stored data at the STANDARD rate',
  },
};
