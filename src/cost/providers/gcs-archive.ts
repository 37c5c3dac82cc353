/** Google Cloud Storage, class ARCHIVE over the XML API: no restore step, 365-day minimum, $0.05/GB retrieval. */
import type { ProviderProfile } from './types.js';

const MiB = 1024 * 1024;
/** GCS states egress per GiB; zbk's tables are per GB (10^9 bytes). */
const GB_PER_GIB = 1.073741824;

export const gcsArchive: ProviderProfile = {
  name: 'gcs-archive',
  description: 'Google Cloud Storage ARCHIVE (XML API): readable at once (no restore step), $0.05/GB retrieval fee, 365-day minimum',
  provider: 'Google Cloud',
  regions: ['us-central1'],
  endpoint: 'https://storage.googleapis.com',
  // Priced as the DEEP_ARCHIVE slot of the table (an unknown class name costs as DEEP_ARCHIVE, see costClass).
  dataStorageClass: 'ARCHIVE',
  metaStorageClass: 'STANDARD',
  restore: { semantics: 'none', tiers: [], note: 'no restore step: ARCHIVE objects are readable at once, each GB read costs the retrieval fee (providers.md ✔)' },
  multipart: { maxParts: 10_000, minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB },
  addressing: {
    pathStyle: true,
    checksumCalculation: 'when_required',
    note: 'XML API multipart is S3-compatible ✔; whether x-amz-storage-class is honoured is unknown ✖: also make ARCHIVE the bucket default class',
  },
  currency: 'USD',
  prices: {
    provider: 'gcs-archive',
    regions: ['us-central1'],
    asOf: '2026-12-01',
    source:
      'providers.md 2026-12: ARCHIVE $0.0012/GB-month regional ✔, 365 d minimum ✔, $0.05/GB retrieval ✔, egress ~$0.12/GiB ✔, unfinished/aborted parts billed as stored data ✔; STANDARD $0.020/GB-month, operations ($0.05/1,000 Class A and B on ARCHIVE, $0.005/1,000 Class A on STANDARD) and a free egress allowance (0) are not in providers.md (GCS list prices, unverified)',
    deepArchiveGBMonth: 0.0012,
    glacierGBMonth: 0.0012,
    glacierIRGBMonth: 0.004,
    standardIAGBMonth: 0.01,
    standardGBMonth: 0.02,
    putPer1000: { STANDARD: 0.005, STANDARD_IA: 0.01, GLACIER_IR: 0.02, GLACIER: 0.05, DEEP_ARCHIVE: 0.05 },
    getPer1000: 0.05,
    listPer1000: 0.005,
    restore: { Standard: { per1000: 0, perGB: 0 }, Bulk: { per1000: 0, perGB: 0 } },
    retrievalPerGB: 0.05,
    egressTiers: [{ uptoGB: null, perGB: 0.12 / GB_PER_GIB }],
    freeEgressGBPerMonth: 0,
    minStorageDays: { STANDARD: 0, STANDARD_IA: 30, GLACIER_IR: 90, GLACIER: 365, DEEP_ARCHIVE: 365 },
    archiveOverheadStandardBytes: 0,
    archiveOverheadArchiveBytes: 0,
    minBillableBytes: { STANDARD: 0, STANDARD_IA: 0, GLACIER_IR: 0, GLACIER: 0, DEEP_ARCHIVE: 0 },
    archiveUploadRequestRate: { CreateMultipartUpload: 'destination', UploadPart: 'destination', CompleteMultipartUpload: 'destination', PutObject: 'destination' },
    archiveStagingClass: 'DEEP_ARCHIVE',
    billingRulesSource: 'providers.md 2026-12: uploaded parts of an unfinished XML multipart upload are stored data of the class ✔',
  },
};
