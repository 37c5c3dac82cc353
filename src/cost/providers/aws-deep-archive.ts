/** AWS S3 Glacier Deep Archive: zbk's default, priced exactly as DEFAULT_PRICES (us-east-1, 2026-11). */
import { DEFAULT_PRICES } from '../prices.js';
import type { ProviderProfile } from './types.js';

const MiB = 1024 * 1024;
const { region: _region, overridden: _overridden, ...prices } = DEFAULT_PRICES;

export const awsDeepArchive: ProviderProfile = {
  name: 'aws-deep-archive',
  description: 'AWS S3 Glacier Deep Archive (default): cheapest AWS storage, 180-day minimum, restores in 12 h (Standard) or 48 h (Bulk)',
  provider: 'Amazon Web Services',
  regions: ['us-east-1'],
  dataStorageClass: 'DEEP_ARCHIVE',
  metaStorageClass: 'STANDARD',
  restore: { semantics: 'tiered', tiers: ['Bulk', 'Standard'], note: 'RestoreObject with Days + Tier (aws-facts.md)' },
  multipart: { maxParts: 10_000, minPartSize: 5 * MiB, maxPartSize: 5 * 1024 * MiB },
  addressing: { pathStyle: false, checksumCalculation: 'when_supported', note: 'virtual-hosted addressing; the SDK default CRC32 checksums are accepted' },
  currency: 'USD',
  prices,
};
