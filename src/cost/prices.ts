/**
 * The dated price table every cost figure in zbk is computed from.
 *
 * Pure: no I/O. Units: USD; storage prices are per GB-month where
 * GB = 10^9 bytes (AWS bills decimal GB); per-object overheads and minimum
 * billable sizes are in bytes with KB = 1024 bytes (AWS states "40 KB" and
 * "128 KB" without a base; 1024 is the larger, hence conservative, reading).
 *
 * Defaults are us-east-1 from /work/shared/reference/aws-facts.md (collected
 * 2026-11). Items marked "not in aws-facts" are public list prices we did
 * not re-verify; zbk does not use those classes by default. Which rate bills
 * each upload request, and the rate of multipart staging, are from the S3
 * User Guide (read 2026-12, /work/shared/reference/providers.md):
 * {@link PriceTable.archiveUploadRequestRate}, {@link PriceTable.archiveStagingClass}.
 */
import { ConfigError } from '../errors.js';

/** Bytes per GB for AWS billing (decimal). */
export const BYTES_PER_GB = 1e9;
/** Billing convention: a month is 30 days when pro-rating by days. */
export const DAYS_PER_MONTH = 30;
export const MS_PER_DAY = 86_400_000;

export const STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];
export type RestoreTier = 'Standard' | 'Bulk';

/**
 * How an archived object becomes readable (a provider profile's restore semantics):
 * - `tiered`: RestoreObject with Days and GlacierJobParameters.Tier (AWS);
 * - `days-only`: RestoreObject with Days, no Tier (Scaleway, OVH);
 * - `none`: no restore step, objects are readable at once (GCS Archive, hot stores).
 */
export type RestoreSemantics = 'tiered' | 'days-only' | 'none';

/**
 * The write requests of an upload: every data volume is a multipart upload
 * (Create, one UploadPart per part, Complete); small metadata objects are
 * one PutObject each.
 */
export const UPLOAD_OPERATIONS = ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'PutObject'] as const;
export type UploadOperation = (typeof UPLOAD_OPERATIONS)[number];
/**
 * Whose PUT rate bills a request: `destination` = the PUT rate of the class
 * the object is written to; `STANDARD` = the S3 Standard PUT rate, whatever
 * the destination.
 */
export type RequestRateClass = 'destination' | 'STANDARD';

/** One internet-egress price tier; `uptoGB` is cumulative billable GB in the month, null = unbounded. */
export interface EgressTier {
  uptoGB: number | null;
  perGB: number;
}

export interface PriceTable {
  /** The provider profile the table comes from (src/cost/providers), e.g. `aws-deep-archive`. */
  provider: string;
  region: string;
  /** The regions these prices are for (a region outside them is warned about). */
  regions: string[];
  /** Date the prices were collected, `YYYY-MM-DD`. */
  asOf: string;
  /** Where the numbers come from (human text). */
  source: string;
  /** Storage, USD per GB-month, per class. */
  deepArchiveGBMonth: number;
  glacierGBMonth: number;
  glacierIRGBMonth: number;
  standardIAGBMonth: number;
  standardGBMonth: number;
  /** PUT/COPY/POST/LIST-into-class (and CreateMultipartUpload/CompleteMultipartUpload), USD per 1,000. */
  putPer1000: Record<StorageClass, number>;
  /** GET and other requests (Deep Archive rate), USD per 1,000. */
  getPer1000: number;
  listPer1000: number;
  /** Restore (thaw) from Deep Archive, per tier. */
  restore: Record<RestoreTier, { per1000: number; perGB: number }>;
  /**
   * The restore step of the profile the table comes from: with `none` a
   * restore has no thaw (no RestoreObject fee, no temporary copy, no lead
   * time), only the read (`retrievalPerGB`) and egress.
   */
  restoreSemantics: RestoreSemantics;
  /** Days a `days-only` restore takes, the provider's stated worst case (Scaleway 1, OVH 2); `tiered` uses the tier's. */
  restoreLeadDays?: number;
  /**
   * Fee per GB read from an archive class that needs no restore step (GCS
   * Archive: $0.05/GB); 0 where reads are free or a restore is priced instead.
   */
  retrievalPerGB: number;
  /** Internet egress above the free allowance, by cumulative tier. */
  egressTiers: EgressTier[];
  /** Free internet egress per calendar month, shared by the whole AWS account. */
  freeEgressGBPerMonth: number;
  /** Minimum storage duration; deleting earlier is charged pro rata for the rest. */
  minStorageDays: Record<StorageClass, number>;
  /** Per archived object (GLACIER, DEEP_ARCHIVE): bytes billed at Standard rate (index metadata). */
  archiveOverheadStandardBytes: number;
  /** Per archived object: bytes billed at the archive class rate. */
  archiveOverheadArchiveBytes: number;
  /** Objects smaller than this are billed as this size (IA, Glacier IR). */
  minBillableBytes: Record<StorageClass, number>;
  /**
   * The rate class of each upload request into an archive class (GLACIER,
   * DEEP_ARCHIVE). The S3 User Guide ("Understanding your AWS billing and
   * usage reports for Amazon S3"): CreateMultipartUpload and UploadPart are
   * billed at S3 Standard request rates until the upload completes; the
   * single CompleteMultipartUpload at the destination class's PUT rate.
   * Into any other class every request is billed at that class's PUT rate.
   */
  archiveUploadRequestRate: Record<UploadOperation, RequestRateClass>;
  /**
   * The class whose storage rate bills the parts of an unfinished multipart
   * upload into an archive class until it is completed or aborted ("S3
   * Glacier Deep Archive Staging Storage", usage type
   * `TimedStorage-GDA-Staging`: S3 Standard, same page). Into any other
   * class the parts are billed at that class's rate.
   */
  archiveStagingClass: StorageClass;
  /** Where the request-rate classes and the staging class come from, with the date read. */
  billingRulesSource: string;
  /** Overridden keys (from config `[prices]`), for display. */
  overridden: string[];
}

const KB = 1024;

/** us-east-1 defaults, from aws-facts.md (2026-11). */
export const DEFAULT_PRICES: PriceTable = Object.freeze({
  provider: 'aws-deep-archive',
  region: 'us-east-1',
  regions: ['us-east-1'],
  asOf: '2026-11-01',
  source: 'aws.amazon.com/s3/pricing, US East (N. Virginia), collected 2026-11 (see docs/COSTS.md)',
  deepArchiveGBMonth: 0.00099,
  glacierGBMonth: 0.0036, // not in aws-facts
  glacierIRGBMonth: 0.004,
  standardIAGBMonth: 0.0125,
  standardGBMonth: 0.023,
  putPer1000: { STANDARD: 0.005, STANDARD_IA: 0.01, GLACIER_IR: 0.02, GLACIER: 0.03, DEEP_ARCHIVE: 0.05 }, // IA/GIR/GLACIER not in aws-facts
  getPer1000: 0.0004,
  listPer1000: 0.005,
  restore: { Standard: { per1000: 0.1, perGB: 0.02 }, Bulk: { per1000: 0.025, perGB: 0.0025 } },
  restoreSemantics: 'tiered',
  retrievalPerGB: 0,
  // "10 TB" tiers read as 10,240 GB etc. (AWS's tier boundaries are binary TB).
  egressTiers: [
    { uptoGB: 10_240, perGB: 0.09 },
    { uptoGB: 51_200, perGB: 0.085 },
    { uptoGB: 153_600, perGB: 0.07 },
    { uptoGB: null, perGB: 0.05 },
  ],
  freeEgressGBPerMonth: 100,
  minStorageDays: { STANDARD: 0, STANDARD_IA: 30, GLACIER_IR: 90, GLACIER: 90, DEEP_ARCHIVE: 180 },
  archiveOverheadStandardBytes: 8 * KB,
  archiveOverheadArchiveBytes: 32 * KB,
  minBillableBytes: { STANDARD: 0, STANDARD_IA: 128 * KB, GLACIER_IR: 128 * KB, GLACIER: 0, DEEP_ARCHIVE: 0 },
  archiveUploadRequestRate: { CreateMultipartUpload: 'STANDARD', UploadPart: 'STANDARD', CompleteMultipartUpload: 'destination', PutObject: 'destination' },
  archiveStagingClass: 'STANDARD',
  billingRulesSource:
    'S3 User Guide, "Understanding your AWS billing and usage reports for Amazon S3", read 2026-12 (reference/providers.md): multipart requests and GDA staging',
  overridden: [],
}) as PriceTable;

type Setter = (t: PriceTable, v: number) => void;

/** A `*_at_class_rate` override: 1 = the destination class's PUT rate, 0 = STANDARD's. */
function rateClassOf(v: number): RequestRateClass {
  return v === 0 ? 'STANDARD' : 'destination';
}

function classKey(c: StorageClass): string {
  return c.toLowerCase();
}

/**
 * Flat override keys accepted in config `[prices]` (all numbers):
 *
 * - `deep_archive_gb_month`, `glacier_gb_month`, `glacier_ir_gb_month`,
 *   `standard_ia_gb_month`, `standard_gb_month` — USD per GB-month
 * - `put_per_1000_<class>` (class lower-case, e.g. `put_per_1000_deep_archive`)
 * - `get_per_1000`, `list_per_1000`
 * - `restore_bulk_per_1000`, `restore_bulk_per_gb`, `restore_standard_per_1000`, `restore_standard_per_gb`
 * - `egress_tier_1_per_gb` … `egress_tier_4_per_gb`, or `egress_per_gb` (all tiers)
 * - `free_egress_gb_month`, `retrieval_per_gb` (read fee without a restore step, GCS)
 * - `eur_to_usd`: the rate converting a EUR-priced profile (Scaleway, OVH);
 *   every other key is in USD, applied after the conversion
 * - `min_days_<class>` (e.g. `min_days_deep_archive`)
 * - `create_multipart_upload_at_class_rate`, `upload_part_at_class_rate`,
 *   `complete_multipart_upload_at_class_rate`: the rate class of that request
 *   into an archive class, 1 = the class's PUT rate, 0 = the STANDARD PUT
 *   rate (defaults 0, 0, 1: {@link PriceTable.archiveUploadRequestRate})
 */
export const PRICE_OVERRIDE_KEYS: Readonly<Record<string, Setter>> = (() => {
  const m: Record<string, Setter> = {
    deep_archive_gb_month: (t, v) => (t.deepArchiveGBMonth = v),
    glacier_gb_month: (t, v) => (t.glacierGBMonth = v),
    glacier_ir_gb_month: (t, v) => (t.glacierIRGBMonth = v),
    standard_ia_gb_month: (t, v) => (t.standardIAGBMonth = v),
    standard_gb_month: (t, v) => (t.standardGBMonth = v),
    get_per_1000: (t, v) => (t.getPer1000 = v),
    list_per_1000: (t, v) => (t.listPer1000 = v),
    restore_bulk_per_1000: (t, v) => (t.restore.Bulk.per1000 = v),
    restore_bulk_per_gb: (t, v) => (t.restore.Bulk.perGB = v),
    restore_standard_per_1000: (t, v) => (t.restore.Standard.per1000 = v),
    restore_standard_per_gb: (t, v) => (t.restore.Standard.perGB = v),
    egress_per_gb: (t, v) => t.egressTiers.forEach((tier) => (tier.perGB = v)),
    free_egress_gb_month: (t, v) => (t.freeEgressGBPerMonth = v),
    retrieval_per_gb: (t, v) => (t.retrievalPerGB = v),
    // Applied by profilePriceTable (src/cost/providers) before every other key: the rate converting a EUR profile's prices.
    eur_to_usd: () => undefined,
    create_multipart_upload_at_class_rate: (t, v) => (t.archiveUploadRequestRate.CreateMultipartUpload = rateClassOf(v)),
    upload_part_at_class_rate: (t, v) => (t.archiveUploadRequestRate.UploadPart = rateClassOf(v)),
    complete_multipart_upload_at_class_rate: (t, v) => (t.archiveUploadRequestRate.CompleteMultipartUpload = rateClassOf(v)),
  };
  for (const c of STORAGE_CLASSES) {
    m[`put_per_1000_${classKey(c)}`] = (t, v) => (t.putPer1000[c] = v);
    m[`min_days_${classKey(c)}`] = (t, v) => (t.minStorageDays[c] = v);
  }
  DEFAULT_PRICES.egressTiers.forEach((_, i) => {
    m[`egress_tier_${i + 1}_per_gb`] = (t, v) => {
      // A provider with fewer egress tiers (Scaleway, B2: one) has no such tier to override.
      const tier = t.egressTiers[i];
      if (!tier) throw new ConfigError(`prices.egress_tier_${i + 1}_per_gb: the ${t.provider} profile has ${t.egressTiers.length} egress tier(s); use egress_per_gb`);
      tier.perGB = v;
    };
  });
  return m;
})();

export function cloneTable(t: PriceTable): PriceTable {
  return {
    ...t,
    regions: [...t.regions],
    putPer1000: { ...t.putPer1000 },
    archiveUploadRequestRate: { ...t.archiveUploadRequestRate },
    restore: { Standard: { ...t.restore.Standard }, Bulk: { ...t.restore.Bulk } },
    egressTiers: t.egressTiers.map((x) => ({ ...x })),
    minStorageDays: { ...t.minStorageDays },
    minBillableBytes: { ...t.minBillableBytes },
    overridden: [...t.overridden],
  };
}

/**
 * The price table for `region`: the dated defaults (AWS Deep Archive,
 * us-east-1) with config overrides merged in. Another provider's table:
 * `profilePriceTable` (src/cost/providers).
 *
 * @throws ConfigError on an unknown key or a negative/non-finite value
 *   (a typo in `[prices]` must not silently fall back to a default).
 */
export function priceTable(region: string, overrides: Record<string, number> = {}): PriceTable {
  return applyPriceOverrides(DEFAULT_PRICES, region, overrides);
}

/** `base` (copied) for `region` with the `[prices]` overrides applied. */
export function applyPriceOverrides(base: PriceTable, region: string, overrides: Record<string, number> = {}): PriceTable {
  const t = cloneTable(base);
  t.region = region;
  for (const [key, value] of Object.entries(overrides)) {
    const set = PRICE_OVERRIDE_KEYS[key];
    if (!set) throw new ConfigError(`prices.${key}: unknown price key (see docs/COSTS.md for the list)`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
      throw new ConfigError(`prices.${key}: must be a non-negative number`);
    }
    if (key.endsWith('_at_class_rate') && value !== 0 && value !== 1) {
      throw new ConfigError(`prices.${key}: must be 1 (the destination class's PUT rate) or 0 (the STANDARD PUT rate)`);
    }
    set(t, value);
    t.overridden.push(key);
  }
  if (t.overridden.length > 0) t.source += `; overridden: ${t.overridden.join(', ')}`;
  return t;
}

/** Whole calendar months from `asOf` (YYYY-MM-DD) to `now` (UTC). */
export function priceTableAgeMonths(table: PriceTable, now: Date): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(table.asOf);
  if (!m) throw new ConfigError(`price table asOf is not YYYY-MM-DD: ${table.asOf}`);
  const months = (now.getUTCFullYear() - Number(m[1])) * 12 + (now.getUTCMonth() + 1 - Number(m[2]));
  // A partial month does not count until its day is reached.
  return now.getUTCDate() < Number(m[3]) ? months - 1 : months;
}

/**
 * Warnings to show next to any cost figure: a table older than
 * `maxAgeMonths` relative to `now`, and a region whose prices are not known.
 */
export function priceTableWarnings(table: PriceTable, now: Date, maxAgeMonths = 12): string[] {
  const out: string[] = [];
  const age = priceTableAgeMonths(table, now);
  if (age > maxAgeMonths) {
    out.push(`price table is ${age} months old (as of ${table.asOf}): check the provider's price page (docs/COSTS.md "Providers") and set [prices] overrides`);
  }
  if (!table.regions.includes(table.region) && table.overridden.length === 0) {
    out.push(`no price table for ${table.region} (profile ${table.provider}): using ${table.regions[0] ?? DEFAULT_PRICES.region} prices; set [prices] overrides`);
  }
  return out;
}

/** Storage price of a class, USD per GB-month. */
export function storagePrice(table: PriceTable, cls: StorageClass): number {
  switch (cls) {
    case 'DEEP_ARCHIVE':
      return table.deepArchiveGBMonth;
    case 'GLACIER':
      return table.glacierGBMonth;
    case 'GLACIER_IR':
      return table.glacierIRGBMonth;
    case 'STANDARD_IA':
      return table.standardIAGBMonth;
    case 'STANDARD':
      return table.standardGBMonth;
  }
}

/**
 * The class whose PUT rate bills request `op` of an upload into `cls`:
 * into an archive class per {@link PriceTable.archiveUploadRequestRate},
 * else `cls` itself.
 */
export function requestRateClass(table: PriceTable, op: UploadOperation, cls: StorageClass): StorageClass {
  return isArchiveClass(cls) && table.archiveUploadRequestRate[op] === 'STANDARD' ? 'STANDARD' : cls;
}

/** The class whose storage rate bills the parts of an unfinished multipart upload into `cls`. */
export function stagingClass(table: PriceTable, cls: StorageClass): StorageClass {
  return isArchiveClass(cls) ? table.archiveStagingClass : cls;
}

/** True for classes billed the 40 KB per-object archive overhead. */
export function isArchiveClass(cls: StorageClass): boolean {
  return cls === 'DEEP_ARCHIVE' || cls === 'GLACIER';
}

/** Narrow a config string (e.g. `store.data_storage_class`) to a known class. */
export function parseStorageClass(s: string): StorageClass {
  const c = STORAGE_CLASSES.find((x) => x === s);
  if (!c) throw new ConfigError(`unknown storage class ${JSON.stringify(s)} (expected one of ${STORAGE_CLASSES.join(', ')})`);
  return c;
}
