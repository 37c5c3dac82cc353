/**
 * When to make the next full: the interval between fulls that is cheapest
 * per day in the long run, for a chain that keeps growing as it has so far.
 *
 * Pure. It is the economic-order-quantity argument applied to re-basing a
 * chain. A cycle of T days between fulls costs
 *
 *   C(T) = R                                   the new full's upload requests
 *        + p · a · T² / 2                      the chain's waste (bytes a new full
 *                                              would shed) stored while it grows by
 *                                              `a` bytes a day
 *        + p · F · max(0, D − T)               the old full, kept to its minimum
 *                                              duration D after the new one exists
 *        + p · i · ∫₀^min(T,D) (D − u) du      old incrementals (i bytes a day) kept
 *                                              to their minimum duration
 *
 * (p the storage price per byte-day; an early deletion, where charged, is
 * the same storage paid at once). The interval chosen minimises C(T) / T.
 * While the waste comes from incrementals (a ≤ i), the cost per day only
 * falls as T grows below D, so the optimum is never before the old full's
 * minimum duration; past it the optimum is √((2R/p + i·D²) / a). It is found
 * here by a search over whole days, which needs neither assumption.
 *
 * Growth that is not waste is stored whatever the interval and drops out.
 * The rates come from the chain itself (its bytes and age), so a workload
 * that changes is followed one chain later.
 */

/** Longest interval considered: ten years. A chain with no waste never needs a new full. */
export const MAX_INTERVAL_DAYS = 3650;

export interface IntervalInput {
  /** Stored bytes of a new full now. */
  fullBytes: number;
  /** Bytes a day the chain adds beyond the library it restores (rewritten data, deletions kept). */
  wasteBytesPerDay: number;
  /** Bytes a day of incremental streams (waste + growth). */
  incrementalBytesPerDay: number;
  /** Storage price, USD per byte per day. */
  pricePerByteDay: number;
  /** Upload requests of one new full, USD. */
  uploadCost: number;
  /** Minimum storage duration of the data class, days. */
  minDays: number;
}

export interface IntervalChoice {
  /** The cheapest interval between fulls, days (MAX_INTERVAL_DAYS when waste is nil). */
  days: number;
  /** USD a day of that interval's waste, overlap and uploads. */
  costPerDay: number;
}

/** C(T) of the model above, USD. */
export function cycleCost(input: IntervalInput, days: number): number {
  const { fullBytes: F, wasteBytesPerDay: a, incrementalBytesPerDay: i, pricePerByteDay: p, uploadCost: R, minDays: D } = input;
  const overlapDays = Math.min(days, D);
  const oldIncrementals = i * (D * overlapDays - (overlapDays * overlapDays) / 2);
  return R + p * ((a * days * days) / 2 + F * Math.max(0, D - days) + oldIncrementals);
}

/** The interval in whole days (1 … MAX_INTERVAL_DAYS) with the least cost per day. */
export function cheapestInterval(input: IntervalInput): IntervalChoice {
  let best: IntervalChoice = { days: MAX_INTERVAL_DAYS, costPerDay: cycleCost(input, MAX_INTERVAL_DAYS) / MAX_INTERVAL_DAYS };
  if (!(input.wasteBytesPerDay > 0)) return best;
  for (let t = 1; t < MAX_INTERVAL_DAYS; t++) {
    const perDay = cycleCost(input, t) / t;
    if (perDay < best.costPerDay) best = { days: t, costPerDay: perDay };
  }
  return best;
}
