/** AWS S3 Glacier Flexible Retrieval (`GLACIER`): 90-day minimum, free Bulk restores. */
import { DEFAULT_PRICES } from '../prices.js';
import { awsDeepArchive } from './aws-deep-archive.js';
import type { ProviderProfile } from './types.js';

export const awsGlacier: ProviderProfile = {
  ...awsDeepArchive,
  name: 'aws-glacier',
  description: 'AWS S3 Glacier Flexible Retrieval: 90-day minimum, free Bulk restores (5-12 h), Standard 3-5 h',
  dataStorageClass: 'GLACIER',
  restore: { semantics: 'tiered', tiers: ['Bulk', 'Standard'], note: 'RestoreObject with Days + Tier; Bulk retrievals free (providers.md ✔)' },
  prices: {
    ...awsDeepArchive.prices,
    source:
      'providers.md 2026-12: GLACIER $0.0036/GB-month ◐, 90 d minimum ✔, Bulk retrievals free ✔; the Standard tier ($0.05/1,000 + $0.01/GB) and the GLACIER PUT rate ($0.03/1,000) are not in providers.md (AWS list prices, unverified); the rest as aws-deep-archive',
    restore: { Standard: { per1000: 0.05, perGB: 0.01 }, Bulk: { per1000: 0, perGB: 0 } },
    minStorageDays: { ...DEFAULT_PRICES.minStorageDays },
  },
};
