/**
 * Restore planner: which volumes to thaw and download in which calendar
 * month, so that a restore stays within the free egress allowance (mode
 * `free`), within a budget as fast as possible (`budget`), or all at once
 * (`asap`), and what each month costs.
 *
 * Pure: no I/O, no clock (the start date is a parameter). GB = 10^9 bytes.
 *
 * Timeline of month i (UTC):
 * - restores of the month's volumes are requested at `requestAt`: the start
 *   date for the first month, else `restoreLeadDays` before the 1st, so the
 *   thaw is done when the new month's allowance begins;
 * - downloads run from `downloadFrom` = max(thaw done, 1st of the month) for
 *   `downloadDays`, and must end inside the calendar month (egress is
 *   counted in the month bytes leave AWS). If the rest of the start month is
 *   too short for thaw + download, the first month is the next calendar month;
 * - each restored copy lives `restoreDays` = ceil(request → download end) + 1
 *   day of margin, so it never expires before its download (S3 rounds the
 *   expiry up to midnight UTC, which only lengthens it).
 *
 * A single volume larger than allowance − reserve cannot be restored free;
 * rather than refuse (the volume size is fixed at upload time) it is
 * scheduled alone in its month and its egress cost is shown, with a warning.
 */
import { UsageError } from '../errors.js';
import { formatBytes, formatBytesPair, formatUSD, formatUSDPair } from '../cli/format.js';
import { addDays, daysBetween, restoreCost } from '../cost/model.js';
import { BYTES_PER_GB, type PriceTable, type RestoreSemantics, type RestoreTier } from '../cost/prices.js';

/** One volume of the restore chain, in receive order. */
export interface RestoreVolume {
  key: string;
  streamId: string;
  /** Position of the stream in the chain (0 = the full). */
  streamIndex: number;
  volumeIndex: number;
  /** Stored (sealed) bytes: what is thawed and downloaded. */
  bytes: number;
  plaintextBytes: number;
}

export type RestoreMode = 'free' | 'budget' | 'asap';

export interface RestorePlanOptions {
  /** Free egress per calendar month, GB (default: the price table's, 100). */
  freeEgressGB?: number;
  /** GB of each month's allowance left for other use (default 10). */
  reserveGB?: number;
  /** Thaw tier (default Bulk). */
  tier?: RestoreTier;
  /** Default `free`. */
  mode?: RestoreMode;
  /** Required for `budget`: total USD the restore may cost. */
  budgetUSD?: number;
  /**
   * Thaw delay (default: none where the profile has no restore step; a
   * `days-only` profile's `restoreLeadDays`; else Bulk 2 days, Standard 0.5
   * day: AWS's 48 h / 12 h).
   */
  restoreLeadDays?: number;
  /** Days allowed to download a month's volumes after the thaw (default 7, at most 28). */
  downloadDays?: number;
  /** GB already downloaded in the start month (by this repository's restores): less of that month's allowance is left. */
  usedThisMonthGB?: number;
}

export interface RestoreCostBreakdown {
  retrieval: number;
  requests: number;
  tempStorage: number;
  egress: number;
  total: number;
}

export interface RestoreMonth {
  /** Calendar month, `YYYY-MM` (UTC). */
  month: string;
  /** Volume keys, in receive order. */
  volumes: string[];
  /** Stored bytes downloaded this month. */
  bytes: number;
  plaintextBytes: number;
  /** ISO instants of the month's timeline. */
  requestAt: string;
  downloadFrom: string;
  downloadBy: string;
  /** `Days` for the RestoreObject requests of this month. */
  restoreDays: number;
  cost: RestoreCostBreakdown;
}

export interface RestorePlan {
  mode: RestoreMode;
  tier: RestoreTier;
  /** The provider's restore step: with `none` nothing is thawed (months have `restoreDays` 0) and downloads start at once. */
  restoreStep: RestoreSemantics;
  months: RestoreMonth[];
  totalBytes: number;
  totalPlaintextBytes: number;
  /** USD, sum of the months. */
  totalCost: number;
  costBreakdown: RestoreCostBreakdown;
  /** ISO instant when the last month's volumes are restored and downloaded. */
  finish: string;
  /** Peak ciphertext bytes on local disk: downloaded volumes of a stream not yet complete and received. */
  stagingBytes: number;
  /** `Days` per volume key (so a copy never expires before its download). */
  restoreDays: Record<string, number>;
  /** Usable GB per month (allowance − reserve). */
  monthlyCapacityGB: number;
  /** For `budget`: whether the chosen plan fits the budget. */
  withinBudget?: boolean;
  warnings: string[];
}

const DEFAULT_LEAD_DAYS: Record<RestoreTier, number> = { Bulk: 2, Standard: 0.5 };

/** Days from the restore request to a readable copy on this provider. */
function defaultLeadDays(prices: PriceTable, tier: RestoreTier): number {
  if (prices.restoreSemantics === 'none') return 0;
  if (prices.restoreSemantics === 'days-only') return prices.restoreLeadDays ?? DEFAULT_LEAD_DAYS.Bulk;
  return DEFAULT_LEAD_DAYS[tier];
}

/**
 * Group sizes, in order, into consecutive bins of at most `capBytes`. A size
 * above the cap gets a bin of its own. `usedInFirst` bytes of the first bin
 * are taken already (downloads earlier this month): what does not fit beside
 * them starts the next bin, leaving the first one empty if need be. Returns
 * bins of indices.
 */
export function packInOrder(sizes: readonly number[], capBytes: number, usedInFirst = 0): number[][] {
  const bins: number[][] = [];
  let cur: number[] = [];
  let used = usedInFirst;
  sizes.forEach((s, i) => {
    if ((cur.length > 0 || used > 0) && used + s > capBytes) {
      bins.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += s;
    if (used > capBytes) {
      // Oversized alone: close it so nothing else pays its egress.
      bins.push(cur);
      cur = [];
      used = 0;
    }
  });
  if (cur.length > 0) bins.push(cur);
  return bins;
}

/**
 * `k` consecutive bins: the last k − 1 packed backwards up to the cap, the
 * remainder (which pays egress) in the first month so most data arrives
 * early. Fewer bins when everything fits sooner.
 */
function packIntoMonths(sizes: readonly number[], capBytes: number, k: number): number[][] {
  const tail: number[][] = [];
  let i = sizes.length - 1;
  while (tail.length < k - 1 && i >= 0) {
    const bin: number[] = [];
    let used = 0;
    while (i >= 0 && (bin.length === 0 || used + sizes[i]! <= capBytes)) {
      bin.unshift(i);
      used += sizes[i]!;
      i--;
      if (used > capBytes) break;
    }
    tail.unshift(bin);
  }
  const head: number[] = [];
  for (let j = 0; j <= i; j++) head.push(j);
  return head.length > 0 ? [head, ...tail] : tail;
}

function monthLabel(d: Date): string {
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

function firstOfMonth(year: number, month0: number): Date {
  return new Date(Date.UTC(year, month0, 1));
}

interface Window {
  month: string;
  requestAt: Date;
  downloadFrom: Date;
  downloadBy: Date;
  restoreDays: number;
}

/** Timeline of the i-th restore month, `shift` calendar months after the start month. */
function monthWindow(start: Date, i: number, shift: number, lead: number, downloadDays: number): Window {
  const y = start.getUTCFullYear();
  const m = start.getUTCMonth();
  const calStart = firstOfMonth(y, m + i + shift);
  const monthStart = i + shift === 0 ? start : calStart;
  const early = addDays(calStart, -lead);
  const requestAt = i + shift === 0 || early.getTime() < start.getTime() ? start : early;
  const ready = addDays(requestAt, lead);
  const downloadFrom = ready.getTime() > monthStart.getTime() ? ready : monthStart;
  const downloadBy = addDays(downloadFrom, downloadDays);
  const restoreDays = Math.ceil(daysBetween(requestAt, downloadBy) - 1e-9) + 1;
  return { month: monthLabel(calStart), requestAt, downloadFrom, downloadBy, restoreDays };
}

function checkOrder(volumes: readonly RestoreVolume[]): void {
  for (let i = 1; i < volumes.length; i++) {
    const a = volumes[i - 1]!;
    const b = volumes[i]!;
    const ok = b.streamIndex > a.streamIndex || (b.streamIndex === a.streamIndex && b.streamId === a.streamId && b.volumeIndex > a.volumeIndex);
    if (!ok) throw new UsageError(`restore plan: volumes are not in chain order at ${b.key}`, 'PLAN_ORDER');
  }
  for (const v of volumes) {
    if (!Number.isSafeInteger(v.bytes) || v.bytes < 0) throw new UsageError(`restore plan: bad size for ${v.key}`, 'PLAN_INPUT');
  }
}

/**
 * Peak staged ciphertext: volumes are downloaded in chain order; a stream is
 * received (and its volumes deleted) as soon as its last volume is on disk.
 */
export function stagingPeak(volumes: readonly RestoreVolume[]): number {
  let staged = 0;
  let peak = 0;
  volumes.forEach((v, i) => {
    staged += v.bytes;
    peak = Math.max(peak, staged);
    const next = volumes[i + 1];
    if (!next || next.streamId !== v.streamId) staged = 0;
  });
  return peak;
}

function sumCosts(costs: readonly RestoreCostBreakdown[]): RestoreCostBreakdown {
  const s = { retrieval: 0, requests: 0, tempStorage: 0, egress: 0, total: 0 };
  for (const c of costs) {
    s.retrieval += c.retrieval;
    s.requests += c.requests;
    s.tempStorage += c.tempStorage;
    s.egress += c.egress;
    s.total += c.total;
  }
  return s;
}

interface Ctx {
  /** GB of month 0's allowance used before the plan (0 when downloads start next month). */
  usedInFirstGB: number;
  volumes: readonly RestoreVolume[];
  start: Date;
  shift: number;
  lead: number;
  downloadDays: number;
  tier: RestoreTier;
  freeGB: number;
  reserveGB: number;
  prices: PriceTable;
}

function buildMonths(ctx: Ctx, bins: number[][]): RestoreMonth[] {
  return bins.map((bin, i) => {
    const w = monthWindow(ctx.start, i, ctx.shift, ctx.lead, ctx.downloadDays);
    // No restore step: no RestoreObject is sent, so there are no Days to ask for.
    if (ctx.prices.restoreSemantics === 'none') w.restoreDays = 0;
    const vols = bin.map((j) => ctx.volumes[j]!);
    const bytes = vols.reduce((a, v) => a + v.bytes, 0);
    const cost = restoreCost(
      { bytes, objects: vols.length, tier: ctx.tier, days: w.restoreDays, freeEgressGB: ctx.freeGB, alreadyUsedGB: ctx.reserveGB + (i === 0 ? ctx.usedInFirstGB : 0) },
      ctx.prices,
    );
    return {
      month: w.month,
      volumes: vols.map((v) => v.key),
      bytes,
      plaintextBytes: vols.reduce((a, v) => a + v.plaintextBytes, 0),
      requestAt: w.requestAt.toISOString(),
      downloadFrom: w.downloadFrom.toISOString(),
      downloadBy: w.downloadBy.toISOString(),
      restoreDays: w.restoreDays,
      cost,
    };
  });
}

function totalOf(months: readonly RestoreMonth[]): number {
  return months.reduce((a, m) => a + m.cost.total, 0);
}

/**
 * Plan the restore of `volumes` (the chain, in receive order) from `start`.
 *
 * @throws UsageError for bad options (budget mode without a budget, no
 *   usable allowance in free mode, downloadDays outside 1..28) or volumes
 *   not in chain order.
 */
export function planRestore(volumes: readonly RestoreVolume[], start: Date, options: RestorePlanOptions, prices: PriceTable): RestorePlan {
  checkOrder(volumes);
  const mode = options.mode ?? 'free';
  const tier = options.tier ?? 'Bulk';
  const freeGB = options.freeEgressGB ?? prices.freeEgressGBPerMonth;
  const reserveGB = options.reserveGB ?? 10;
  const lead = options.restoreLeadDays ?? defaultLeadDays(prices, tier);
  const downloadDays = options.downloadDays ?? 7;
  if (!(downloadDays > 0 && downloadDays <= 28)) throw new UsageError('restore plan: downloadDays must be within 1..28 (a download must end inside its month)');
  if (!(lead >= 0)) throw new UsageError('restore plan: restoreLeadDays must be ≥ 0');
  if (reserveGB < 0 || freeGB < 0) throw new UsageError('restore plan: free egress and reserve must be ≥ 0');
  const capGB = freeGB - reserveGB;
  if (mode === 'free' && capGB <= 0) throw new UsageError(`restore plan: no usable free egress (allowance ${freeGB} GB − reserve ${reserveGB} GB); use --budget or --asap`, 'NO_ALLOWANCE');
  if (mode === 'budget' && (options.budgetUSD === undefined || !(options.budgetUSD >= 0))) throw new UsageError('restore plan: budget mode needs a budget in USD ≥ 0');
  const capBytes = Math.max(0, capGB) * BYTES_PER_GB;
  const warnings: string[] = [];

  // Does the rest of the start month hold a thaw plus a download?
  const first = monthWindow(start, 0, 0, lead, downloadDays);
  const startMonthEnd = firstOfMonth(start.getUTCFullYear(), start.getUTCMonth() + 1);
  const shift = first.downloadBy.getTime() > startMonthEnd.getTime() ? 1 : 0;
  if (shift === 1) {
    const thaw = lead > 0 ? `a ${lead}-day thaw and ` : '';
    warnings.push(`the rest of ${first.month} is too short for ${thaw}a ${downloadDays}-day download: downloads start in the next month`);
  }

  const usedInFirstGB = shift === 0 ? Math.max(0, options.usedThisMonthGB ?? 0) : 0;
  const ctx: Ctx = { usedInFirstGB, volumes, start, shift, lead, downloadDays, tier, freeGB, reserveGB, prices };
  const sizes = volumes.map((v) => v.bytes);
  const freeBins = packInOrder(sizes, capBytes, usedInFirstGB * BYTES_PER_GB);
  let months: RestoreMonth[];
  let withinBudget: boolean | undefined;

  if (mode === 'asap') {
    months = buildMonths(ctx, volumes.length > 0 ? [volumes.map((_, i) => i)] : []);
  } else if (mode === 'free') {
    months = buildMonths(ctx, freeBins);
  } else {
    const budget = options.budgetUSD!;
    const freeMonths = buildMonths(ctx, freeBins);
    months = freeMonths;
    withinBudget = false;
    for (let k = 1; k < freeBins.length; k++) {
      const candidate = buildMonths(ctx, packIntoMonths(sizes, capBytes, k));
      if (totalOf(candidate) <= budget) {
        months = candidate;
        withinBudget = true;
        break;
      }
    }
    if (!withinBudget) {
      withinBudget = totalOf(freeMonths) <= budget;
      if (!withinBudget) {
        const [budgetText, cheapestText] = formatUSDPair(budget, totalOf(freeMonths));
        warnings.push(`budget ${budgetText} is below the cheapest schedule (${cheapestText}): showing the free-allowance schedule`);
      }
    }
  }

  for (const v of volumes) {
    if (v.bytes > capBytes && mode !== 'asap') {
      const [size, cap] = formatBytesPair(v.bytes, capBytes);
      warnings.push(`volume ${v.key} (${size}) exceeds the usable allowance of ${cap}: it gets a month of its own and its egress is charged`);
    }
  }

  const restoreDays: Record<string, number> = {};
  for (const m of months) for (const k of m.volumes) restoreDays[k] = m.restoreDays;
  const costBreakdown = sumCosts(months.map((m) => m.cost));
  const last = months[months.length - 1];
  return {
    mode,
    tier,
    restoreStep: prices.restoreSemantics,
    months,
    totalBytes: sizes.reduce((a, b) => a + b, 0),
    totalPlaintextBytes: volumes.reduce((a, v) => a + v.plaintextBytes, 0),
    totalCost: costBreakdown.total,
    costBreakdown,
    finish: last ? last.downloadBy : start.toISOString(),
    stagingBytes: stagingPeak(volumes),
    restoreDays,
    monthlyCapacityGB: Math.max(0, capGB),
    ...(withinBudget === undefined ? {} : { withinBudget }),
    warnings,
  };
}

const fmtGB = formatBytes;
const fmtUSD = (x: number): string => formatUSD(x);

/** Rows for the `restore plan` table: a header and one row per month plus a total. */
export function describeMonths(plan: RestorePlan): { header: string[]; rows: string[][] } {
  const header = ['month', 'volumes', 'size', plan.restoreStep === 'none' ? 'download from' : 'thaw by', 'download by', 'retrieval', 'egress', 'total'];
  const rows = plan.months.map((m) => [
    m.month,
    String(m.volumes.length),
    fmtGB(m.bytes),
    m.downloadFrom.slice(0, 10),
    m.downloadBy.slice(0, 10),
    fmtUSD(m.cost.retrieval + m.cost.requests + m.cost.tempStorage),
    fmtUSD(m.cost.egress),
    fmtUSD(m.cost.total),
  ]);
  const c = plan.costBreakdown;
  rows.push([
    'total',
    String(plan.months.reduce((a, m) => a + m.volumes.length, 0)),
    fmtGB(plan.totalBytes),
    '',
    plan.finish.slice(0, 10),
    fmtUSD(c.retrieval + c.requests + c.tempStorage),
    fmtUSD(c.egress),
    fmtUSD(c.total),
  ]);
  return { header, rows };
}
