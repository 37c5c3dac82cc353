/**
 * A provider profile: everything zbk needs to know about one storage
 * service to price it and to drive its restore correctly. Data, not code:
 * one small module per profile in this folder, listed in ./index.ts.
 *
 * Prices are in the profile's own `currency`; `profilePriceTable` (./index.ts)
 * converts EUR with `eurToUsd` (overridable: `[prices] eur_to_usd`). Every
 * figure's source is in `prices.source`; a figure not found in the survey
 * (/work/shared/reference/providers.md, 2026-12) is said to be so there.
 */
import type { PriceTable, RestoreSemantics, RestoreTier } from '../prices.js';

export type { RestoreSemantics } from '../prices.js';
export const RESTORE_SEMANTICS: readonly RestoreSemantics[] = ['tiered', 'days-only', 'none'];

/** The native-currency price table of a profile (region, overrides and the restore terms are added by `profilePriceTable`). */
export type ProfilePrices = Omit<PriceTable, 'region' | 'overridden' | 'restoreSemantics' | 'restoreLeadDays'>;

export interface MultipartLimits {
  /** Most parts in one multipart upload (AWS 10,000; Scaleway 1,000). */
  maxParts: number;
  /** Smallest part but the last, bytes. */
  minPartSize: number;
  /** Largest part, bytes. */
  maxPartSize: number;
}

export interface ProviderProfile {
  /** The name in `[store] provider` and `zbk init --provider`. */
  name: string;
  description: string;
  /** The company / service. */
  provider: string;
  /** Regions the prices are for; the first is the default. */
  regions: readonly string[];
  /** S3 endpoint, `{region}` replaced by the region; absent: the AWS SDK's own. */
  endpoint?: string;
  /** Storage class of volumes, as sent in `x-amz-storage-class`. */
  dataStorageClass: string;
  /** Storage class of small metadata (must be instantly readable). */
  metaStorageClass: string;
  restore: {
    semantics: RestoreSemantics;
    /** Tiers the provider offers (`tiered` only); the others ignore `[restore] tier`. */
    tiers: readonly RestoreTier[];
    /** `days-only`: days until a restored copy is readable, the provider's stated worst case (the planner's thaw lead). */
    leadDays?: number;
    note: string;
  };
  multipart: MultipartLimits;
  addressing: {
    pathStyle: boolean;
    checksumCalculation: 'when_supported' | 'when_required';
    note: string;
  };
  currency: 'USD' | 'EUR';
  /** EUR profiles: the stated conversion rate (USD per EUR). */
  eurToUsd?: number;
  prices: ProfilePrices;
}
