/**
 * `zbk cost simulate`: the long-run comparison of consolidation policies
 * (src/planner/simulate.ts) for a workload the user describes, priced with the
 * configured table. Pure computation; no manifest, no store.
 */
import { UsageError } from '../errors.js';
import { priceTable, priceTableWarnings } from '../cost/prices.js';
import { DEFAULT_POLICIES, DEFAULT_WORKLOAD, simulate, simulationTable, type SimulationResult, type Workload } from '../planner/simulate.js';

export interface SimulateOptions {
  /** Overrides of DEFAULT_WORKLOAD (months, initialGB, growthGBPerMonth, churnPerMonth, …). */
  workload?: Partial<Workload>;
  region?: string;
  prices?: Record<string, number>;
  /** Calendar start of the simulation (only fixes the month grid). */
  start: Date;
}

export interface SimulateResult {
  workload: Workload;
  results: SimulationResult[];
  /** The same results as a Markdown table (as in docs/COSTS.md). */
  table: string;
  priceTableDate: string;
  warnings: string[];
}

export function simulateCosts(opts: SimulateOptions): SimulateResult {
  const workload: Workload = { ...DEFAULT_WORKLOAD, ...opts.workload };
  for (const [k, v] of Object.entries(workload)) {
    if (typeof v === 'number' && (!Number.isFinite(v) || v < 0)) throw new UsageError(`workload ${k} must be a non-negative number`);
  }
  if (!Number.isInteger(workload.months) || workload.months < 1) throw new UsageError('--months must be a positive integer');
  const prices = priceTable(opts.region ?? 'us-east-1', opts.prices ?? {});
  const results = DEFAULT_POLICIES.map((p) => simulate(workload, p, prices, opts.start));
  return { workload, results, table: simulationTable(results), priceTableDate: prices.asOf, warnings: priceTableWarnings(prices, opts.start) };
}
