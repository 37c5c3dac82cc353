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
  isArchiveClass,
  storagePrice,
} from './prices.js';

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

/** Request counts of uploading objects. */
export interface UploadRequests {
  /** Requests billed at the target class's PUT rate. */
  atClassRate: number;
  /** Requests billed at the STANDARD PUT rate. */
  atStandardRate: number;
}

/**
 * Requests to upload `objects` objects totalling `parts` multipart parts
 * into a class. Every object is a multipart upload: CreateMultipartUpload +
 * one UploadPart per part + CompleteMultipartUpload. Create and Complete are
 * billed at the class rate; UploadPart at the class rate when
 * `prices.uploadPartAtClassRate` (unverified, conservative default), else at
 * the STANDARD rate.
 */
export function uploadRequests(objects: number, parts: number, prices: PriceTable): UploadRequests {
  return prices.uploadPartAtClassRate
    ? { atClassRate: 2 * objects + parts, atStandardRate: 0 }
    : { atClassRate: 2 * objects, atStandardRate: parts };
}

/** USD of {@link uploadRequests}. */
export function uploadRequestCost(objects: number, parts: number, cls: StorageClass, prices: PriceTable): number {
  const r = uploadRequests(objects, parts, prices);
  return (r.atClassRate * prices.putPer1000[cls] + r.atStandardRate * prices.putPer1000.STANDARD) / 1000;
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
 * retrieval = GB × tier per-GB; requests = objects × (tier per-1000 + GET
 * per-1000) / 1000; temp copy = GB × Standard GB-month × days / 30; egress
 * above the free allowance.
 */
export function restoreCost(input: RestoreCostInput, prices: PriceTable): RestoreCost {
  const g = gb(input.bytes);
  const t = prices.restore[input.tier];
  const retrieval = g * t.perGB;
  const requests = (input.objects * (t.per1000 + prices.getPer1000)) / 1000;
  const tempStorage = (g * prices.standardGBMonth * input.days) / DAYS_PER_MONTH;
  const egress = egressCost(g, prices, input.freeEgressGB ?? prices.freeEgressGBPerMonth, input.alreadyUsedGB ?? 0);
  return { retrieval, requests, tempStorage, egress, total: retrieval + requests + tempStorage + egress };
}

/**
 * Storage cost of parts of an unfinished multipart upload ("GDA staging"):
 * billed at Standard rates until completed or aborted, pro rata for `days`.
 */
export function multipartStagingCost(partBytes: number, days: number, prices: PriceTable): number {
  return (gb(partBytes) * prices.standardGBMonth * days) / DAYS_PER_MONTH;
}

export interface PushCostInput {
  /** Stored (sealed) bytes of the stream. */
  bytes: number;
  /** Multipart parts over all volumes. */
  parts: number;
  /** Volumes (objects in the data class). */
  volumes: number;
  /** Data class (default DEEP_ARCHIVE). */
  storageClass?: StorageClass;
  /** Small metadata objects written with a single PUT in STANDARD (stream record, manifest mirror); default 2. */
  metadataPuts?: number;
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
  requests: UploadRequests & { metadata: number };
}

/**
 * What a push costs: for `push --dry-run` and the `push --json` result.
 * One-time: multipart requests of every volume + metadata PUTs. Monthly:
 * storage of the stream bytes plus 40 KB overhead per volume.
 */
export function estimatePushCost(input: PushCostInput, prices: PriceTable): PushCostEstimate {
  const cls = input.storageClass ?? 'DEEP_ARCHIVE';
  const metadataPuts = input.metadataPuts ?? 2;
  const req = uploadRequests(input.volumes, input.parts, prices);
  const dataRequests = uploadRequestCost(input.volumes, input.parts, cls, prices);
  const metadataRequests = (metadataPuts * prices.putPer1000.STANDARD) / 1000;
  const perVolume = objectMonthlyCost({ bytes: 0, storageClass: cls }, prices).overhead;
  const data = gb(input.bytes) * storagePrice(prices, cls);
  const overhead = perVolume * input.volumes;
  const addedMonthly = { data, overhead, total: data + overhead };
  return {
    oneTime: { dataRequests, metadataRequests, total: dataRequests + metadataRequests },
    addedMonthly,
    // Data + archive-rate overhead; the 8 KB Standard-rate part has no minimum.
    minimumCommitment:
      (gb(input.bytes + (isArchiveClass(cls) ? input.volumes * prices.archiveOverheadArchiveBytes : 0)) *
        storagePrice(prices, cls) *
        prices.minStorageDays[cls]) /
      DAYS_PER_MONTH,
    requests: { ...req, metadata: metadataPuts },
  };
}
