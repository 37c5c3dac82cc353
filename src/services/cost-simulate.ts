/**
 * `zbk cost simulate`: the long-run comparison of consolidation policies
 * (src/planner/simulate.ts) for a workload the user describes, priced with the
 * configured table. Pure computation; no manifest, no store.
 */
import { UsageError } from '../errors.js';
import { priceTableWarnings } from '../cost/prices.js';
import { DEFAULT_PROVIDER, defaultRegion, minPartSizeFor, profilePriceTable, providerProfile } from '../cost/providers/index.js';
import { DEFAULT_POLICIES, DEFAULT_WORKLOAD, simulate, simulationTable, type Policy, type SimulationResult, type Workload } from '../planner/simulate.js';
import { costClass } from './consolidate/schedule.js';

export interface SimulateOptions {
  /** Overrides of DEFAULT_WORKLOAD (months, initialGB, growthGBPerMonth, churnPerMonth, …). */
  workload?: Partial<Workload>;
  /** Provider profile (default aws-deep-archive): its prices, minimum durations, data class and part limit. */
  provider?: string;
  /** Default: the profile's first region. */
  region?: string;
  prices?: Record<string, number>;
  /** Default: DEFAULT_POLICIES (the docs/COSTS.md table). */
  policies?: readonly Policy[];
  /** Calendar start of the simulation (only fixes the month grid). */
  start: Date;
}

export interface SimulateResult {
  provider: string;
  region: string;
  workload: Workload;
  results: SimulationResult[];
  /** The same results as a Markdown table (as in docs/COSTS.md). */
  table: string;
  priceTableDate: string;
  warnings: string[];
}

export function simulateCosts(opts: SimulateOptions): SimulateResult {
  const profile = providerProfile(opts.provider ?? DEFAULT_PROVIDER);
  const base: Workload = { ...DEFAULT_WORKLOAD, storageClass: costClass(profile.dataStorageClass) };
  const workload: Workload = { ...base, ...opts.workload };
  // A volume never needs more parts than the provider takes (Scaleway: 1,000).
  workload.partBytes = Math.max(workload.partBytes, minPartSizeFor(workload.volumeBytes, profile.multipart));
  for (const [k, v] of Object.entries(workload)) {
    if (typeof v === 'number' && (!Number.isFinite(v) || v < 0)) throw new UsageError(`workload ${k} must be a non-negative number`);
  }
  if (!Number.isInteger(workload.months) || workload.months < 1) throw new UsageError('--months must be a positive integer');
  const prices = profilePriceTable(profile, opts.region ?? defaultRegion(profile), opts.prices ?? {});
  const results = (opts.policies ?? DEFAULT_POLICIES).map((p) => simulate(workload, p, prices, opts.start));
  return { provider: profile.name, region: prices.region, workload, results, table: simulationTable(results), priceTableDate: prices.asOf, warnings: priceTableWarnings(prices, opts.start) };
}
