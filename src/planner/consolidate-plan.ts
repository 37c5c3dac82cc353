/**
 * Consolidation planner: should a dataset's latest snapshot be re-based on
 * a new full stream, so that objects only the old chain needed can go?
 *
 * Pure: no I/O, `now` is a parameter. GB = 10^9 bytes; months are 30 days.
 *
 * The comparison, over `horizonMonths` months from `now`:
 * - cost: uploading the new full (its requests, priced as a push) + early-deletion
 *   charges of objects deleted before their minimum duration (only with
 *   `allowEarlyDelete`), plus the new full's storage every month;
 * - saving: the storage of every object that only the old chain of the
 *   latest snapshot needed, from the day it is deleted — now if it is past
 *   its minimum duration (or early deletion is allowed), else its
 *   `notBefore` date (it goes into `deleteLater`).
 * Break-even is the first month whose cumulative saving covers the cost;
 * zbk recommends only when that month is within the horizon, and (with the
 * default `timing: 'interval'`) only once the chain is as old as the
 * cheapest interval between fulls for its own rate of waste
 * (./full-interval.ts): paying back at all is not enough, since a full
 * made a little later sheds more waste for the same upload and overlap.
 *
 * Objects needed by any kept snapshot's chain are never in a delete list.
 * Objects no kept snapshot needs even today are reported under `prune`
 * (they go whatever is decided, so they are left out of the comparison).
 */
import { UsageError } from '../errors.js';
import {
  daysBetween,
  earlyDeletionCharge,
  minimumDeleteDate,
  objectMonthlyCost,
  uploadCost as pushUploadCost,
} from '../cost/model.js';
import { BYTES_PER_GB, DAYS_PER_MONTH, MS_PER_DAY, storagePrice, type PriceTable, type StorageClass } from '../cost/prices.js';
import { cheapestInterval, cycleCost, type IntervalInput } from './full-interval.js';
import { packInOrder } from './restore-plan.js';

export interface ConsolidationVolume {
  key: string;
  /** Stored bytes. */
  bytes: number;
  uploadedAt: Date;
}

export interface ConsolidationStream {
  streamId: string;
  kind: 'full' | 'incremental';
  /** Base snapshot guid (null for a full). */
  fromGuid: string | null;
  toGuid: string;
  storedBytes: number;
  volumes: ConsolidationVolume[];
  /** Data class of the volumes (default DEEP_ARCHIVE). */
  storageClass?: StorageClass;
}

export interface ConsolidationInput {
  dataset: string;
  /** Every stream of the dataset (possibly several chains). */
  streams: readonly ConsolidationStream[];
  /** Snapshots that must stay restorable (from retention); must include the latest. */
  keptGuids: ReadonlySet<string> | readonly string[];
  /** Latest pushed snapshot (the one a new full would be made of). */
  latestGuid: string;
  /** Estimated stored bytes of a new full of the latest snapshot (its referenced bytes + sealing overhead). */
  newFullBytes: number;
  now: Date;
  /** Default 24. */
  horizonMonths?: number;
  /** Allow deleting objects younger than their minimum duration now (charge shown). Default false. */
  allowEarlyDelete?: boolean;
  prices: PriceTable;
  /** For the restore comparison (defaults: the table's allowance, 10 GB reserve). */
  freeEgressGB?: number;
  reserveGB?: number;
  /** Stored bytes per volume and per part of the new full (defaults 4 GiB, 64 MiB). */
  volumeBytes?: number;
  partBytes?: number;
  /**
   * `interval` (default): recommend once the chain is as old as the cheapest
   * interval between fulls; `payback`: as soon as a new full pays back
   * within the horizon (a smaller restore sooner, more money in the long run).
   */
  timing?: ConsolidationTiming;
}

export type ConsolidationTiming = 'interval' | 'payback';
export const CONSOLIDATION_TIMINGS: readonly ConsolidationTiming[] = ['interval', 'payback'];

/** The interval rule's figures for the latest chain (./full-interval.ts). */
export interface IntervalSummary {
  timing: ConsolidationTiming;
  /** Days since the chain's full was uploaded. */
  chainAgeDays: number;
  /** Stored bytes a day the chain has added beyond what a new full holds. */
  wasteBytesPerDay: number;
  /** The cheapest interval between fulls at that rate, days. */
  cheapestDays: number;
  /** Instant the chain reaches that age (ISO), at the current rates (re-estimated on each run). */
  dueAt: string;
  /** USD a year a full at `cheapestDays` saves over one at the chain's age now, in the long run (0 once due). */
  waitingSavesPerYear: number;
}

/** A consolidation must save at least this fraction of the new full's own monthly storage. */
const MIN_SAVING_FRACTION = 0.01;

export interface ChainSummary {
  /** The full stream the chain starts at. */
  fullStreamId: string;
  /** Streams descending from the full (any branch). */
  streamIds: string[];
  storedBytes: number;
  objects: number;
  /** Kept snapshot guids whose restore uses this chain. */
  neededBy: string[];
}

export interface DeleteNow {
  key: string;
  bytes: number;
  /** USD charged for deleting before the minimum duration (0 when old enough). */
  earlyDeletionCharge: number;
}

export interface DeleteLater {
  key: string;
  /** ISO instant from which deletion is free. */
  notBefore: string;
}

export interface RestoreShape {
  /** Stored bytes of the latest snapshot's chain. */
  bytes: number;
  /** Calendar months to download it within allowance − reserve. */
  months: number;
}

export interface ConsolidationPlan {
  dataset: string;
  recommend: boolean;
  reason: string;
  latestGuid: string;
  horizonMonths: number;
  chains: ChainSummary[];
  newFull: { bytes: number; volumes: number; parts: number; uploadCost: number; monthlyCost: number };
  /**
   * Deletions that come with the consolidation: empty unless `recommend`
   * (so nothing can delete the only chain of the latest snapshot by
   * mistake). Carry them out only after the new full is uploaded and recorded.
   */
  deleteNow: DeleteNow[];
  deleteLater: DeleteLater[];
  /** Objects no kept snapshot needs already (independent of the decision). */
  prune: { deleteNow: DeleteNow[]; deleteLater: DeleteLater[] };
  /** Upload requests + early-deletion charges, USD. */
  oneTimeCost: number;
  earlyDeletionCharges: number;
  /** Monthly saving once every deletion is done (negative: consolidation costs more each month). */
  monthlySavings: number;
  /** First month (1-based) whose cumulative saving covers the one-time cost; null if none within the horizon. */
  breakEvenMonth: number | null;
  /** Cumulative saving − one-time cost at the end of the horizon. */
  netSavingsOverHorizon: number;
  restoreBefore: RestoreShape;
  restoreAfter: RestoreShape;
  interval: IntervalSummary;
  warnings: string[];
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Cheapest (fewest stored bytes) chain of streams from a full to `guid`, or null. */
export function chainTo(guid: string, streams: readonly ConsolidationStream[]): ConsolidationStream[] | null {
  const byTo = new Map<string, ConsolidationStream[]>();
  for (const s of streams) {
    const l = byTo.get(s.toGuid) ?? [];
    l.push(s);
    byTo.set(s.toGuid, l);
  }
  const memo = new Map<string, ConsolidationStream[] | null>();
  const visiting = new Set<string>();
  const solve = (g: string): ConsolidationStream[] | null => {
    if (memo.has(g)) return memo.get(g)!;
    if (visiting.has(g)) return null; // a cycle cannot be restored
    visiting.add(g);
    let best: ConsolidationStream[] | null = null;
    let bestBytes = Infinity;
    for (const s of byTo.get(g) ?? []) {
      let path: ConsolidationStream[] | null = null;
      if (s.kind === 'full') path = [s];
      else if (s.fromGuid !== null) {
        const base = solve(s.fromGuid);
        path = base ? [...base, s] : null;
      }
      if (!path) continue;
      const bytes = path.reduce((a, x) => a + x.storedBytes, 0);
      if (bytes < bestBytes || (bytes === bestBytes && best !== null && path.length < best.length)) {
        best = path;
        bestBytes = bytes;
      }
    }
    visiting.delete(g);
    memo.set(g, best);
    return best;
  };
  return solve(guid);
}

function classOf(s: ConsolidationStream): StorageClass {
  return s.storageClass ?? 'DEEP_ARCHIVE';
}

interface Obj {
  key: string;
  bytes: number;
  uploadedAt: Date;
  storageClass: StorageClass;
}


function splitDeletes(objs: Iterable<Obj>, now: Date, allowEarly: boolean, prices: PriceTable): { now: DeleteNow[]; later: DeleteLater[]; at: Map<string, number> } {
  const out = { now: [] as DeleteNow[], later: [] as DeleteLater[], at: new Map<string, number>() };
  for (const o of objs) {
    const notBefore = minimumDeleteDate(o, prices);
    if (notBefore.getTime() <= now.getTime() || allowEarly) {
      const age = daysBetween(o.uploadedAt, now);
      out.now.push({ key: o.key, bytes: o.bytes, earlyDeletionCharge: earlyDeletionCharge(o, age, prices) });
      out.at.set(o.key, 0);
    } else {
      out.later.push({ key: o.key, notBefore: notBefore.toISOString() });
      out.at.set(o.key, daysBetween(now, notBefore));
    }
  }
  out.now.sort((a, b) => byCodeUnits(a.key, b.key));
  out.later.sort((a, b) => byCodeUnits(a.notBefore, b.notBefore) || byCodeUnits(a.key, b.key));
  return out;
}

/** Plain string order (keys and ISO dates are ASCII; localeCompare's collation is slow and locale-dependent). */
function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function volumeSizes(total: number, volumeBytes: number): number[] {
  const out: number[] = [];
  for (let left = total; left > 0; left -= volumeBytes) out.push(Math.min(left, volumeBytes));
  return out;
}

/**
 * Plan the consolidation of one dataset.
 *
 * @throws UsageError when the latest snapshot has no restorable chain, or
 *   is not among the kept snapshots.
 */
export function planConsolidation(input: ConsolidationInput): ConsolidationPlan {
  const { prices, now, streams } = input;
  const horizon = input.horizonMonths ?? 24;
  const allowEarly = input.allowEarlyDelete ?? false;
  const volumeBytes = input.volumeBytes ?? 4 * GiB;
  const partBytes = input.partBytes ?? 64 * MiB;
  const capBytes = Math.max(0, (input.freeEgressGB ?? prices.freeEgressGBPerMonth) - (input.reserveGB ?? 10)) * BYTES_PER_GB;
  const kept = new Set(input.keptGuids);
  if (!kept.has(input.latestGuid)) throw new UsageError(`consolidate ${input.dataset}: the latest snapshot must be kept`, 'PLAN_INPUT');
  const latestChain = chainTo(input.latestGuid, streams);
  if (!latestChain) throw new UsageError(`consolidate ${input.dataset}: the latest snapshot has no complete chain in the store`, 'PLAN_INPUT');
  const warnings: string[] = [];

  // What kept snapshots need today, and without the latest's old chain.
  const neededNow = new Set<string>();
  const neededByOthers = new Set<string>();
  const usersOfStream = new Map<string, Set<string>>();
  for (const g of kept) {
    const chain = chainTo(g, streams);
    if (!chain) {
      warnings.push(`kept snapshot ${g} has no complete chain in the store`);
      continue;
    }
    for (const s of chain) {
      neededNow.add(s.streamId);
      if (g !== input.latestGuid) neededByOthers.add(s.streamId);
      const u = usersOfStream.get(s.streamId) ?? new Set<string>();
      u.add(g);
      usersOfStream.set(s.streamId, u);
    }
  }
  // A volume belongs to one stream (its key names it): what no kept snapshot needs is pruned, what only the latest's chain needs may go with it.
  const pruneObjs: Obj[] = [];
  const consolidateObjs: Obj[] = [];
  for (const s of streams) {
    const into = !neededNow.has(s.streamId) ? pruneObjs : !neededByOthers.has(s.streamId) ? consolidateObjs : null;
    if (into) for (const v of s.volumes) into.push({ key: v.key, bytes: v.bytes, uploadedAt: v.uploadedAt, storageClass: classOf(s) });
  }

  const prune = splitDeletes(pruneObjs, now, allowEarly, prices);
  const del = splitDeletes(consolidateObjs, now, allowEarly, prices);

  // Chains: each full with everything descending from it.
  const chains: ChainSummary[] = [];
  const childrenOf = new Map<string, ConsolidationStream[]>();
  for (const s of streams) {
    if (s.kind === 'incremental' && s.fromGuid !== null) childrenOf.set(s.fromGuid, [...(childrenOf.get(s.fromGuid) ?? []), s]);
  }
  for (const full of streams.filter((s) => s.kind === 'full')) {
    // Breadth first from the full's snapshot: every incremental that descends from it (any branch), each once.
    const members = [full];
    const isMember = new Set<ConsolidationStream>(members);
    for (let i = 0; i < members.length; i++) {
      for (const s of childrenOf.get(members[i]!.toGuid) ?? []) {
        if (isMember.has(s)) continue;
        members.push(s);
        isMember.add(s);
      }
    }
    const neededBy = new Set<string>();
    for (const s of members) for (const g of usersOfStream.get(s.streamId) ?? []) neededBy.add(g);
    chains.push({
      fullStreamId: full.streamId,
      streamIds: members.map((s) => s.streamId),
      storedBytes: members.reduce((a, s) => a + s.storedBytes, 0),
      objects: members.reduce((a, s) => a + s.volumes.length, 0),
      neededBy: [...neededBy].sort(),
    });
  }

  // The new full.
  const cls: StorageClass = classOf(latestChain[0]!);
  const newSizes = volumeSizes(input.newFullBytes, volumeBytes);
  const parts = newSizes.reduce((a, b) => a + Math.max(1, Math.ceil(b / partBytes)), 0);
  // What pushing it costs in requests, as `zbk push` prices it (multipart requests + its metadata PUTs).
  const uploadCost = pushUploadCost({ volumes: newSizes.length, parts, storageClass: cls }, prices).total;
  const newMonthly = newSizes.reduce((a, b) => a + objectMonthlyCost({ bytes: b, storageClass: cls }, prices).total, 0);
  const newFull = { bytes: input.newFullBytes, volumes: newSizes.length, parts, uploadCost, monthlyCost: newMonthly };

  const earlyDeletionCharges = del.now.reduce((a, d) => a + d.earlyDeletionCharge, 0);
  const oneTimeCost = uploadCost + earlyDeletionCharges;

  // Month-by-month saving: deleted storage from its deletion day, minus the new full.
  // Objects deleted on the same day are summed first (a push's volumes share it): months × days, not × objects.
  const monthlyByDelay = new Map<number, number>();
  for (const o of consolidateObjs) {
    const d = del.at.get(o.key)!;
    monthlyByDelay.set(d, (monthlyByDelay.get(d) ?? 0) + objectMonthlyCost(o, prices).total);
  }
  let cumulative = -oneTimeCost;
  let breakEvenMonth: number | null = null;
  for (let m = 1; m <= horizon; m++) {
    let saved = 0;
    const lo = DAYS_PER_MONTH * (m - 1);
    const hi = DAYS_PER_MONTH * m;
    for (const [d, monthly] of monthlyByDelay) saved += monthly * Math.min(1, Math.max(0, (hi - Math.max(d, lo)) / DAYS_PER_MONTH));
    cumulative += saved - newMonthly;
    if (breakEvenMonth === null && cumulative >= 0 && consolidateObjs.length > 0) breakEvenMonth = m;
  }
  const monthlySavings = [...monthlyByDelay.values()].reduce((a, b) => a + b, 0) - newMonthly;

  const beforeSizes = latestChain.flatMap((s) => s.volumes.map((v) => v.bytes));
  const restoreBefore = { bytes: beforeSizes.reduce((a, b) => a + b, 0), months: capBytes > 0 ? packInOrder(beforeSizes, capBytes).length : 0 };
  const restoreAfter = { bytes: input.newFullBytes, months: capBytes > 0 ? packInOrder(newSizes, capBytes).length : 0 };

  const interval = intervalOf(latestChain, input.newFullBytes, uploadCost, cls, now, prices, input.timing ?? 'interval');

  let recommend = false;
  let reason: string;
  if (latestChain.length === 1) {
    reason = 'the latest snapshot is already restored from a single full stream';
  } else if (consolidateObjs.length === 0) {
    reason = 'kept snapshots still need every object of the current chain: a new full would only add storage';
  } else if (breakEvenMonth === null) {
    reason = `does not pay back within ${horizon} months (net ${cumulative >= 0 ? '+' : '−'}$${Math.abs(cumulative).toFixed(2)} at the horizon)`;
  } else if (monthlySavings < MIN_SAVING_FRACTION * newMonthly) {
    // Where uploads are free and nothing has a minimum duration (hot S3, Scaleway) any waste at all "pays back" at once.
    reason = `a new full would save only $${Math.max(0, monthlySavings).toFixed(4)}/month, under 1 % of its own storage: not worth sending the whole snapshot again`;
  } else if (interval.timing === 'interval' && interval.chainAgeDays < interval.cheapestDays) {
    reason =
      `a new full now would pay back in month ${breakEvenMonth} against never re-basing, but one made on ${interval.dueAt.slice(0, 10)} costs about ` +
      `$${interval.waitingSavesPerYear.toFixed(2)}/year less: the chain adds ${formatRate(interval.wasteBytesPerDay)} a day of waste (data rewritten or deleted since its full), ` +
      `so the cheapest interval between fulls is ${interval.cheapestDays} days and the chain is ${Math.floor(interval.chainAgeDays)} days old (the date is re-estimated on each run)`;
  } else {
    recommend = true;
    reason = `pays back in month ${breakEvenMonth}: one-time $${oneTimeCost.toFixed(2)}, then saves $${monthlySavings.toFixed(2)}/month once old objects are deleted`;
  }
  if (del.later.length > 0 && !allowEarly) {
    warnings.push(`${del.later.length} objects are younger than the minimum storage duration: delete them on or after their notBefore date`);
  }
  return {
    dataset: input.dataset,
    recommend,
    reason,
    latestGuid: input.latestGuid,
    horizonMonths: horizon,
    chains,
    newFull,
    deleteNow: recommend ? del.now : [],
    deleteLater: recommend ? del.later : [],
    prune: { deleteNow: prune.now, deleteLater: prune.later },
    oneTimeCost,
    earlyDeletionCharges,
    monthlySavings,
    breakEvenMonth,
    netSavingsOverHorizon: cumulative,
    restoreBefore,
    restoreAfter,
    interval,
    warnings,
  };
}

/**
 * The interval rule for `chain` (full first): its age, its waste a day
 * (chain bytes beyond a new full, over its age; at least one day of age, as
 * pushes are at most a few a day) and the cheapest interval at that rate.
 */
function intervalOf(chain: readonly ConsolidationStream[], newFullBytes: number, uploadCost: number, cls: StorageClass, now: Date, prices: PriceTable, timing: ConsolidationTiming): IntervalSummary {
  const full = chain[0]!;
  const born = Math.min(...full.volumes.map((v) => v.uploadedAt.getTime()), now.getTime());
  const chainAgeDays = daysBetween(new Date(born), now);
  const ageForRates = Math.max(1, chainAgeDays);
  const chainBytes = chain.reduce((n, s) => n + s.storedBytes, 0);
  const wasteBytesPerDay = Math.max(0, chainBytes - newFullBytes) / ageForRates;
  const minDays = prices.minStorageDays[cls];
  const model: IntervalInput = {
    // The old full is what stays beside the new one until its minimum duration.
    fullBytes: full.storedBytes,
    wasteBytesPerDay,
    incrementalBytesPerDay: (chainBytes - full.storedBytes) / ageForRates,
    pricePerByteDay: storagePrice(prices, cls) / BYTES_PER_GB / DAYS_PER_MONTH,
    uploadCost,
    minDays,
  };
  const best = cheapestInterval(model);
  // Never before the old full may go for free: deleting it early costs the same storage (deleted data can make waste outrun the incrementals, and the model alone then says sooner).
  const days = Math.max(best.days, minDays);
  const perDay = (t: number): number => cycleCost(model, t) / t;
  const waitingSavesPerYear = Math.max(0, (perDay(Math.max(1, Math.min(chainAgeDays, days))) - perDay(days)) * 365);
  return { timing, chainAgeDays, wasteBytesPerDay, cheapestDays: days, dueAt: new Date(born + days * MS_PER_DAY).toISOString(), waitingSavesPerYear };
}

function formatRate(bytesPerDay: number): string {
  return bytesPerDay >= BYTES_PER_GB / 10 ? `${(bytesPerDay / BYTES_PER_GB).toFixed(2)} GB` : `${(bytesPerDay / 1e6).toFixed(1)} MB`;
}
