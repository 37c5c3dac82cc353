/**
 * `zbk cost compare`: this repository priced on every provider profile over
 * a horizon (default 10 years): its stored data, its recent growth and push
 * rate, consolidated by zbk's planner under each provider's own minimum
 * duration, and one full restore of the latest snapshot at the end within
 * each provider's free egress allowance.
 *
 * One model: the workload comes from `costReport` (the same growth `zbk cost`
 * projects with) and each provider is run through `simulateCosts` (the same
 * simulation `zbk cost simulate` shows). Reads the local manifest only.
 *
 * Decisions, stated in docs/COSTS.md: everything incrementals added lately
 * counts as growth (churn 0: the conservative reading, as rewritten data
 * cannot be told from new data); the stored data starts as one full on every
 * provider (what moving the repository there would mean); the config's
 * `[prices]` overrides apply to its own provider, `eur_to_usd` to every EUR
 * profile, and every other profile is priced as its dated table states.
 */
import { monthlyStorageCost } from '../cost/model.js';
import { BYTES_PER_GB } from '../cost/prices.js';
import { DEFAULT_PROVIDER, PROVIDER_NAMES, profilePriceTable, providerProfile } from '../cost/providers/index.js';
import type { Workload } from '../planner/simulate.js';
import { UsageError } from '../errors.js';
import { costClass } from './consolidate/schedule.js';
import { openManifest, type ServiceContext } from './context.js';
import { costReport } from './cost.js';
import { simulateCosts } from './cost-simulate.js';
import { costObjectsOf } from './status.js';

/** The planner's horizon `zbk consolidate` uses by default. */
const HORIZON_MONTHS = 24;

export interface CostCompareOptions {
  /** Horizon, months (default 120, at most 1200). */
  months?: number;
}

export interface ProviderComparison {
  provider: string;
  description: string;
  region: string;
  /** The profile's own currency; every figure here is USD (EUR converted at the stated rate). */
  currency: 'USD' | 'EUR';
  pricesAsOf: string;
  /** Part size pushes would use there (the configured one, raised to the provider's part limit). */
  partSize: number;
  /** This repository's stored objects today at this provider's rates, USD per month. */
  monthlyNow: number;
  /** Over the horizon, USD. */
  storage: number;
  requests: number;
  earlyDeletion: number;
  total: number;
  fulls: number;
  storedGBAtEnd: number;
  /** One full restore of the latest snapshot at the end, within the free allowance (one month where there is none). */
  restoreGB: number;
  restoreMonths: number;
  restoreCost: number;
  /** The same restore in one month. */
  restoreAsapCost: number;
  /** total + restoreCost: what keeping the copy and bringing it back once costs. */
  totalWithRestore: number;
  /** True for the configured provider. */
  current: boolean;
  warnings: string[];
}

export interface CostCompareResult {
  at: string;
  months: number;
  /** What the comparison assumes of this repository (from its manifest); each provider stores it in its own data class. */
  workload: Omit<Workload, 'storageClass'>;
  /** The configured provider. */
  provider: string;
  /** Cheapest first by totalWithRestore. */
  providers: ProviderComparison[];
  cheapest: string;
}

export function costCompare(ctx: ServiceContext, opts: CostCompareOptions = {}): CostCompareResult {
  const months = opts.months ?? 120;
  if (!Number.isInteger(months) || months < 1 || months > 1200) throw new UsageError(`--months must be an integer from 1 to 1200, got ${months}`);
  const now = ctx.now();
  const report = costReport(ctx, { months: 1 });
  const manifest = openManifest(ctx, null);
  let objects;
  try {
    objects = costObjectsOf(manifest);
  } finally {
    manifest.close();
  }
  const storedBytes = report.byDataset.reduce((n, l) => n + l.storedBytes, 0) - report.scheduledDeletions.bytes;
  if (storedBytes <= 0) {
    throw new UsageError('cost compare: nothing is stored yet (push first), or price a described workload with "zbk cost simulate --provider NAME"', 'NOTHING_STORED');
  }
  const up = ctx.config.upload;
  const workload: Omit<Workload, 'storageClass'> = {
    months,
    initialGB: Math.max(0, storedBytes) / BYTES_PER_GB,
    growthGBPerMonth: report.recentGrowthBytesPerMonth / BYTES_PER_GB,
    churnPerMonth: 0,
    pushesPerMonth: Math.max(1, Math.round(report.recentObjectsPerMonth)),
    volumeBytes: up.volumeSize,
    partBytes: up.partSize,
  };
  const own = ctx.config.store.provider ?? DEFAULT_PROVIDER;
  const overrides = ctx.config.prices;
  const rows = PROVIDER_NAMES.map((name): ProviderComparison => {
    const profile = providerProfile(name);
    const current = name === own;
    const prices = current ? overrides : overrides.eur_to_usd !== undefined && profile.currency === 'EUR' ? { eur_to_usd: overrides.eur_to_usd } : {};
    const sim = simulateCosts({ provider: name, ...(current ? { region: ctx.config.store.region } : {}), prices, workload, policies: [{ kind: 'zbk', horizonMonths: HORIZON_MONTHS, timing: ctx.config.consolidate.timing }], start: now });
    const r = sim.results[0]!;
    const table = profilePriceTable(profile, sim.region, prices);
    const cls = costClass(profile.dataStorageClass);
    return {
      provider: name,
      description: profile.description,
      region: sim.region,
      currency: profile.currency,
      pricesAsOf: sim.priceTableDate,
      partSize: sim.workload.partBytes,
      monthlyNow: monthlyStorageCost(
        objects.map((o) => ({ ...o, storageClass: cls })),
        table,
      ).total,
      storage: r.storage,
      requests: r.requests,
      earlyDeletion: r.earlyDeletion,
      total: r.total,
      fulls: r.fulls,
      storedGBAtEnd: r.storedGBAtEnd,
      restoreGB: r.restoreGB,
      restoreMonths: r.restoreMonths,
      restoreCost: r.restoreCost,
      restoreAsapCost: r.restoreAsapCost,
      totalWithRestore: r.total + r.restoreCost,
      current,
      warnings: sim.warnings,
    };
  }).sort((a, b) => a.totalWithRestore - b.totalWithRestore);
  return { at: now.toISOString(), months, workload: { ...workload }, provider: own, providers: rows, cheapest: rows[0]!.provider };
}
