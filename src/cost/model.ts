/**
 * The cost model: storage, requests, early deletion, restores, egress and
 * multipart staging, from a {@link PriceTable}.
 *
 * Pure: no I/O, no clock (time is always a parameter). Money is plain USD
 * numbers, never rounded here (round only for display). Bytes are exact
 * integers; GB = 10^9 bytes. Pro-rating by days uses a 30-day month
 * (AWS bills GB-hours over the calendar month; 30 days is the convention of
 * its own early-deletion examples and is within ±3.5 % of any month).
 */
import {
  BYTES_PER_GB,
  DAYS_PER_MONTH,
  MS_PER_DAY,
  type PriceTable,
  type RestoreTier,
  type StorageClass,
  type UploadOperation,
  isArchiveClass,
  requestRateClass,
  stagingClass,
  storagePrice,
} from './prices.js';

const HOURS_PER_DAY = 24;

/** One stored object as the cost model sees it. */
export interface CostObject {
  /** Exact object size in bytes (as stored, i.e. sealed). */
  bytes: number;
  storageClass: StorageClass;
  uploadedAt?: Date;
  deletedAt?: Date;
}

export interface StorageCost {
  /** Data bytes at the class rate (after minimum billable size). */
  data: number;
  /** Per-object archive overhead (8 KB Standard + 32 KB class rate). */
  overhead: number;
  total: number;
}

/** Bytes → GB (decimal). */
export function gb(bytes: number): number {
  return bytes / BYTES_PER_GB;
}

/** Whole-and-fractional days from `a` to `b`. */
export function daysBetween(a: Date, b: Date): number {
  return (b.getTime() - a.getTime()) / MS_PER_DAY;
}

/** `d` + `days` days. */
export function addDays(d: Date, days: number): Date {
  return new Date(d.getTime() + days * MS_PER_DAY);
}

/**
 * Monthly storage cost of one object held a full month: data at the class
 * rate (IA/GIR objects below 128 KB billed as 128 KB) plus, for archive
 * classes, 8 KB at the Standard rate and 32 KB at the class rate.
 */
export function objectMonthlyCost(obj: Pick<CostObject, 'bytes' | 'storageClass'>, prices: PriceTable): StorageCost {
  const billable = Math.max(obj.bytes, prices.minBillableBytes[obj.storageClass]);
  const data = gb(billable) * storagePrice(prices, obj.storageClass);
  const overhead = isArchiveClass(obj.storageClass)
    ? gb(prices.archiveOverheadStandardBytes) * prices.standardGBMonth +
      gb(prices.archiveOverheadArchiveBytes) * storagePrice(prices, obj.storageClass)
    : 0;
  return { data, overhead, total: data + overhead };
}

/** Whether `obj` is stored at instant `at` (uploaded at or before, not yet deleted). */
export function isStoredAt(obj: CostObject, at: Date): boolean {
  if (obj.uploadedAt && obj.uploadedAt.getTime() > at.getTime()) return false;
  if (obj.deletedAt && obj.deletedAt.getTime() <= at.getTime()) return false;
  return true;
}

/**
 * Monthly storage cost of a set of objects. With `at`, only objects stored
 * at that instant count (a snapshot of the bill's run rate); without it,
 * every object counts.
 */
export function monthlyStorageCost(objects: readonly CostObject[], prices: PriceTable, at?: Date): StorageCost {
  const sum: StorageCost = { data: 0, overhead: 0, total: 0 };
  for (const o of objects) {
    if (at && !isStoredAt(o, at)) continue;
    const c = objectMonthlyCost(o, prices);
    sum.data += c.data;
    sum.overhead += c.overhead;
    sum.total += c.total;
  }
  return sum;
}

/**
 * Storage cost of the objects over [from, to): each object pro rata for the
 * days it is stored in that window, at monthlyCost × days / 30.
 */
export function storageCostBetween(objects: readonly CostObject[], prices: PriceTable, from: Date, to: Date): number {
  let total = 0;
  for (const o of objects) {
    const start = Math.max(from.getTime(), o.uploadedAt?.getTime() ?? -Infinity);
    const end = Math.min(to.getTime(), o.deletedAt?.getTime() ?? Infinity);
    if (end <= start) continue;
    total += (objectMonthlyCost(o, prices).total * (end - start)) / MS_PER_DAY / DAYS_PER_MONTH;
  }
  return total;
}

/**
 * Early-deletion charge for deleting `obj` when it is `ageDays` old:
 * billable bytes (data + the 32 KB archive-rate overhead) × class price per
 * GB-month × remaining days / 30, with remaining = minimum days − age.
 * Zero at or beyond the minimum. The 8 KB Standard-rate overhead has no
 * minimum duration and is not charged.
 */
export function earlyDeletionCharge(obj: Pick<CostObject, 'bytes' | 'storageClass'>, ageDays: number, prices: PriceTable): number {
  const remaining = prices.minStorageDays[obj.storageClass] - ageDays;
  if (remaining <= 0) return 0;
  const billable =
    Math.max(obj.bytes, prices.minBillableBytes[obj.storageClass]) +
    (isArchiveClass(obj.storageClass) ? prices.archiveOverheadArchiveBytes : 0);
  return (gb(billable) * storagePrice(prices, obj.storageClass) * remaining) / DAYS_PER_MONTH;
}

/** Earliest instant an object can be deleted without an early-deletion charge. */
export function minimumDeleteDate(obj: { uploadedAt: Date; storageClass: StorageClass }, prices: PriceTable): Date {
  return addDays(obj.uploadedAt, prices.minStorageDays[obj.storageClass]);
}

/** One kind of upload request: how many, and the class whose PUT rate bills them. */
export interface OperationRequests {
  count: number;
  /** The class whose PUT rate applies ({@link requestRateClass}). */
  rateClass: StorageClass;
  /** That rate, USD per 1,000. */
  per1000: number;
  /** count × per1000 / 1000, USD. */
  cost: number;
}

/** Request counts of uploading objects as multipart uploads. */
export interface UploadRequests {
  /** Requests billed at the destination class's PUT rate. */
  atClassRate: number;
  /** Requests billed at the STANDARD PUT rate (for a STANDARD destination: none here, all are at its class rate). */
  atStandardRate: number;
  /** Per operation: count, rate class, rate and cost. */
  byOperation: Record<Exclude<UploadOperation, 'PutObject'>, OperationRequests>;
}

function operationRequests(op: UploadOperation, count: number, cls: StorageClass, prices: PriceTable): OperationRequests {
  const rateClass = requestRateClass(prices, op, cls);
  const per1000 = prices.putPer1000[rateClass];
  return { count, rateClass, per1000, cost: (count * per1000) / 1000 };
}

/**
 * Requests to upload `objects` objects totalling `parts` multipart parts
 * into `cls` (default DEEP_ARCHIVE). Every object is a multipart upload:
 * CreateMultipartUpload + one UploadPart per part + CompleteMultipartUpload,
 * each billed at the PUT rate of its rate class: into an archive class
 * Create and UploadPart at the STANDARD rate, Complete at the class rate
 * (by default: {@link PriceTable.archiveUploadRequestRate}).
 */
export function uploadRequests(objects: number, parts: number, prices: PriceTable, cls: StorageClass = 'DEEP_ARCHIVE'): UploadRequests {
  const byOperation = {
    CreateMultipartUpload: operationRequests('CreateMultipartUpload', objects, cls, prices),
    UploadPart: operationRequests('UploadPart', parts, cls, prices),
    CompleteMultipartUpload: operationRequests('CompleteMultipartUpload', objects, cls, prices),
  };
  let atClassRate = 0;
  let atStandardRate = 0;
  for (const r of Object.values(byOperation)) {
    if (r.rateClass === cls) atClassRate += r.count;
    else atStandardRate += r.count;
  }
  return { atClassRate, atStandardRate, byOperation };
}

/** USD of {@link uploadRequests}: the sum over operations of count × its rate. */
export function uploadRequestCost(objects: number, parts: number, cls: StorageClass, prices: PriceTable): number {
  const r = uploadRequests(objects, parts, prices, cls).byOperation;
  return r.CreateMultipartUpload.cost + r.UploadPart.cost + r.CompleteMultipartUpload.cost;
}

export interface UploadCostInput {
  /** Multipart parts over all volumes. */
  parts: number;
  /** Volumes (objects in the data class). */
  volumes: number;
  /** Data class (default DEEP_ARCHIVE). */
  storageClass?: StorageClass;
  /** Small metadata objects written with a single PUT in STANDARD (stream record, manifest mirror); default 2. */
  metadataPuts?: number;
}

export interface UploadCost {
  /** Multipart requests of the volumes. */
  dataRequests: number;
  /** PutObject of the metadata objects at the STANDARD rate. */
  metadataRequests: number;
  total: number;
  requests: UploadRequests & { metadata: number };
}

/**
 * The one-time request cost of uploading a stream: the multipart requests
 * of every volume ({@link uploadRequestCost}) + the metadata PUTs. Every
 * figure that prices an upload (`push --dry-run`, the push result, `cost
 * simulate`, a consolidation's new full) comes from here.
 */
export function uploadCost(input: UploadCostInput, prices: PriceTable): UploadCost {
  const cls = input.storageClass ?? 'DEEP_ARCHIVE';
  const metadataPuts = input.metadataPuts ?? 2;
  const req = uploadRequests(input.volumes, input.parts, prices, cls);
  const dataRequests = uploadRequestCost(input.volumes, input.parts, cls, prices);
  const metadataRequests = operationRequests('PutObject', metadataPuts, 'STANDARD', prices).cost;
  return { dataRequests, metadataRequests, total: dataRequests + metadataRequests, requests: { ...req, metadata: metadataPuts } };
}

/**
 * Internet egress cost of downloading `gbThisMonth` GB in a calendar month
 * in which `alreadyUsedGB` GB already left the account. The first
 * `freeGB` GB of the month are free; the rest is priced through the tiers,
 * whose boundaries count billable (post-allowance) GB.
 */
export function egressCost(gbThisMonth: number, prices: PriceTable, freeGB = prices.freeEgressGBPerMonth, alreadyUsedGB = 0): number {
  const billed = (usedGB: number): number => {
    let remaining = Math.max(0, usedGB - freeGB);
    let lower = 0;
    let cost = 0;
    for (const tier of prices.egressTiers) {
      const width = tier.uptoGB === null ? Infinity : tier.uptoGB - lower;
      const inTier = Math.min(remaining, width);
      cost += inTier * tier.perGB;
      remaining -= inTier;
      if (remaining <= 0 || tier.uptoGB === null) break;
      lower = tier.uptoGB;
    }
    return cost;
  };
  return billed(alreadyUsedGB + gbThisMonth) - billed(alreadyUsedGB);
}

export interface RestoreCost {
  /** Tier per-GB retrieval fee. */
  retrieval: number;
  /** RestoreObject requests (tier rate) + GET requests to download. */
  requests: number;
  /** Temporary restored copy at Standard rate for `days`. */
  tempStorage: number;
  /** Internet egress above the allowance. */
  egress: number;
  total: number;
}

export interface RestoreCostInput {
  /** Stored bytes restored and downloaded. */
  bytes: number;
  /** Objects restored (one RestoreObject and one GET each). */
  objects: number;
  tier: RestoreTier;
  /** `Days` of the RestoreObject request (temporary copy lifetime). */
  days: number;
  /** Free egress this month (default: the table's allowance). */
  freeEgressGB?: number;
  /** GB of this month's egress already used by something else. */
  alreadyUsedGB?: number;
}

/**
 * Cost of restoring and downloading objects within one calendar month:
 * retrieval = GB × (tier per-GB + read fee `retrievalPerGB`); requests =
 * objects × (tier per-1000 + GET per-1000) / 1000; temp copy = GB × Standard
 * GB-month × days / 30 (AWS, Scaleway and OVH bill the restored copy at the
 * Standard rate for the Days asked); egress above the free allowance.
 * Where the profile has no restore step (`restoreSemantics: 'none'`, GCS
 * Archive, hot stores) there is no tier fee and no temporary copy: only the
 * GETs, the read fee and egress. Not included: polling while the thaws run
 * (⌈objects/1000⌉ LISTs per poll at `listPer1000`, as many polls as the
 * timer makes: fractions of a cent), which a restore counts in its job's
 * spending as it polls (src/services/restore/poll.ts).
 */
export function restoreCost(input: RestoreCostInput, prices: PriceTable): RestoreCost {
  const g = gb(input.bytes);
  const thaw = prices.restoreSemantics !== 'none';
  const t = thaw ? prices.restore[input.tier] : { per1000: 0, perGB: 0 };
  const retrieval = g * (t.perGB + prices.retrievalPerGB);
  const requests = (input.objects * (t.per1000 + prices.getPer1000)) / 1000;
  const tempStorage = thaw ? (g * prices.standardGBMonth * input.days) / DAYS_PER_MONTH : 0;
  const egress = egressCost(g, prices, input.freeEgressGB ?? prices.freeEgressGBPerMonth, input.alreadyUsedGB ?? 0);
  return { retrieval, requests, tempStorage, egress, total: retrieval + requests + tempStorage + egress };
}

/** USD per GB-month of the parts of an unfinished multipart upload into `cls` ({@link stagingClass}: Standard for archive classes). */
export function stagingPricePerGBMonth(prices: PriceTable, cls: StorageClass = 'DEEP_ARCHIVE'): number {
  return storagePrice(prices, stagingClass(prices, cls));
}

/**
 * Storage cost of parts of an unfinished multipart upload ("GDA staging"):
 * `partBytes` billed at Standard rates (for an archive class) until the
 * upload is completed or aborted, pro rata for `days`:
 * GB × $/GB-month × days / 30.
 */
export function multipartStagingCost(partBytes: number, days: number, prices: PriceTable, cls: StorageClass = 'DEEP_ARCHIVE'): number {
  return (gb(partBytes) * stagingPricePerGBMonth(prices, cls) * days) / DAYS_PER_MONTH;
}

/** {@link multipartStagingCost} of `bytes` in flight for `hours` hours (a day is 24 hours, a month 30 days). */
export function multipartStagingCostHours(bytes: number, hours: number, prices: PriceTable, cls: StorageClass = 'DEEP_ARCHIVE'): number {
  return multipartStagingCost(bytes, hours / HOURS_PER_DAY, prices, cls);
}

export interface StagingRate {
  /** Bytes in flight. */
  bytes: number;
  /** USD per month (30 days) while they stay in flight. */
  monthly: number;
  daily: number;
  hourly: number;
}

/** What `bytes` in flight cost per month, day and hour. */
export function stagingRate(bytes: number, prices: PriceTable, cls: StorageClass = 'DEEP_ARCHIVE'): StagingRate {
  return {
    bytes,
    monthly: multipartStagingCost(bytes, DAYS_PER_MONTH, prices, cls),
    daily: multipartStagingCost(bytes, 1, prices, cls),
    hourly: multipartStagingCostHours(bytes, 1, prices, cls),
  };
}

export interface PushCostInput extends UploadCostInput {
  /** Stored (sealed) bytes of the stream. */
  bytes: number;
  /** Size of a volume, all but the last (default: bytes / volumes each). */
  volumeBytes?: number;
  /** How long the upload runs, hours (for {@link PushCostEstimate.staging} `total`). */
  uploadHours?: number;
}

export interface PushStagingEstimate {
  /**
   * Mean bytes in flight over the upload at a steady rate: each volume's
   * parts accumulate until its CompleteMultipartUpload, so a volume of v
   * bytes holds v/2 on average for its share of the time; over the stream
   * Σv² / (2 Σv) (half a volume when all are equal).
   */
  averageBytes: number;
  /** The largest volume: the most that is in flight at once (one volume at a time). */
  peakBytes: number;
  /** Staging cost per hour and per day the upload runs, at `averageBytes`. */
  perHour: number;
  perDay: number;
  /** perHour × `uploadHours`; null without it. */
  total: number | null;
}

export interface PushCostEstimate {
  /** One-time request charges. */
  oneTime: { dataRequests: number; metadataRequests: number; total: number };
  /** Added to the monthly bill while the stream is kept. */
  addedMonthly: StorageCost;
  /**
   * Storage committed by the minimum duration (180 days = 6 months for Deep
   * Archive of data + 32 KB/volume), paid even if deleted sooner.
   */
  minimumCommitment: number;
  /** Multipart staging while the upload runs (at Standard rates for an archive class). */
  staging: PushStagingEstimate;
  requests: UploadRequests & { metadata: number };
}

/** Volume sizes of `bytes` cut into `volumes` volumes of `volumeBytes` (the last the rest), or equal ones. */
function volumeSizesOf(bytes: number, volumes: number, volumeBytes: number | undefined): number[] {
  if (volumes <= 0 || bytes <= 0) return [];
  if (volumeBytes === undefined || volumeBytes <= 0 || volumeBytes * volumes < bytes) return Array.from({ length: volumes }, () => bytes / volumes);
  const sizes: number[] = [];
  for (let left = bytes; left > 0 && sizes.length < volumes; left -= volumeBytes) sizes.push(Math.min(left, volumeBytes));
  return sizes;
}

/** {@link PushStagingEstimate} of a stream of `bytes` in `volumes` volumes. */
export function pushStaging(
  input: { bytes: number; volumes: number; volumeBytes?: number; uploadHours?: number; storageClass?: StorageClass },
  prices: PriceTable,
): PushStagingEstimate {
  const sizes = volumeSizesOf(input.bytes, input.volumes, input.volumeBytes);
  const sum = sizes.reduce((a, v) => a + v, 0);
  const averageBytes = sum > 0 ? sizes.reduce((a, v) => a + v * v, 0) / (2 * sum) : 0;
  const rate = stagingRate(averageBytes, prices, input.storageClass ?? 'DEEP_ARCHIVE');
  return {
    averageBytes,
    peakBytes: sizes.reduce((a, v) => Math.max(a, v), 0),
    perHour: rate.hourly,
    perDay: rate.daily,
    total: input.uploadHours === undefined ? null : rate.hourly * input.uploadHours,
  };
}

/**
 * What a push costs: for `push --dry-run` and the `push --json` result.
 * One-time: {@link uploadCost}. Monthly: storage of the stream bytes plus
 * 40 KB overhead per volume. Staging: the parts in flight while it uploads.
 */
export function estimatePushCost(input: PushCostInput, prices: PriceTable): PushCostEstimate {
  const cls = input.storageClass ?? 'DEEP_ARCHIVE';
  const once = uploadCost(input, prices);
  const perVolume = objectMonthlyCost({ bytes: 0, storageClass: cls }, prices).overhead;
  const data = gb(input.bytes) * storagePrice(prices, cls);
  const overhead = perVolume * input.volumes;
  const addedMonthly = { data, overhead, total: data + overhead };
  return {
    oneTime: { dataRequests: once.dataRequests, metadataRequests: once.metadataRequests, total: once.total },
    addedMonthly,
    // Data + archive-rate overhead; the 8 KB Standard-rate part has no minimum.
    minimumCommitment:
      (gb(input.bytes + (isArchiveClass(cls) ? input.volumes * prices.archiveOverheadArchiveBytes : 0)) *
        storagePrice(prices, cls) *
        prices.minStorageDays[cls]) /
      DAYS_PER_MONTH,
    staging: pushStaging({ ...input, storageClass: cls }, prices),
    requests: once.requests,
  };
}
