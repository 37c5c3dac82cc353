/**
 * Egress accounting of restores, per calendar month of the step's clock:
 * what the repository's restores already downloaded and what one month's
 * downloads may add up to. The free egress allowance is per account, not per
 * job, so every check counts the repository's other restore jobs too.
 *
 * Thaws are checked against the same cap before they are requested (see
 * mayRequest in ./thaw.ts), so a copy is not thawed for a month that cannot
 * take its download.
 */
import { stat } from 'node:fs/promises';
import { BYTES_PER_GB } from '../../cost/prices.js';
import type { ServiceContext } from '../context.js';
import { isLocalStore, monthOf, type JobVolume, type RestoreJob } from './job.js';

/** The part of a month's egress allowance other restore jobs of the repository used. */
export interface SharedEgress {
  month: string;
  bytes: number;
  datasets: string[];
}

/**
 * What these checks read of a restore step (./step.ts satisfies it). The
 * step itself is passed, not a copy, so its clock is read at each call.
 */
export interface EgressScope {
  readonly ctx: ServiceContext;
  readonly job: RestoreJob;
  readonly others: readonly RestoreJob[];
  readonly now: Date;
  readonly out: { sharedEgress: SharedEgress | null };
}

/** Bytes of a volume's unfinished download staged at `path` (0 when none). */
export function partialSize(path: string): Promise<number> {
  return stat(`${path}.partial`).then(
    (st) => st.size,
    () => 0,
  );
}

/**
 * Everything at once: the `asap` mode, or a local-directory store (no
 * thaw, no egress, so the month schedule protects nothing).
 */
export function unmetered(step: EgressScope): boolean {
  return step.job.options.mode === 'asap' || isLocalStore(step.ctx.store);
}

/** Stored bytes the other restore jobs downloaded in `month`. */
function othersEgress(step: EgressScope, month: string): number {
  return step.others.reduce((a, j) => a + (j.egressByMonth[month] ?? 0), 0);
}

/** Stored bytes downloaded in `month` by every restore of this repository (the allowance is per account, not per job). */
export function egressUsed(step: EgressScope, month: string): number {
  return (step.job.egressByMonth[month] ?? 0) + othersEgress(step, month);
}

/** Say when other restores already used part of this month's allowance (free mode only: the others are what limits it). */
export function reportSharedEgress(step: EgressScope): void {
  if (unmetered(step) || step.job.options.mode !== 'free') return;
  const month = monthOf(step.now);
  const bytes = othersEgress(step, month);
  if (bytes === 0) return;
  const datasets = step.others.filter((j) => (j.egressByMonth[month] ?? 0) > 0).map((j) => j.dataset);
  step.out.sharedEgress = { month, bytes, datasets };
  step.ctx.log.info(
    `the restore(s) of ${datasets.join(', ')} already downloaded ${(bytes / BYTES_PER_GB).toFixed(3)} GB in ${month}: the egress allowance is per account, so this restore gets only the rest`,
  );
}

/**
 * Stored bytes all restores of the repository may download in one month:
 * the usable free allowance, or in budget mode the plan's heaviest month
 * (its schedule pays for that much egress), so a month that slipped does
 * not put two months' downloads, and their egress, into one.
 */
export function monthCap(job: RestoreJob): number {
  const usable = job.plan.monthlyCapacityGB * BYTES_PER_GB;
  if (job.options.mode !== 'budget') return usable;
  return Math.max(usable, ...job.plan.months.map((m) => m.bytes));
}

/**
 * Calendar month and the cap of `month` (default: this one; monthCap)
 * permit downloading `v` then, with `committed` more bytes of it already
 * promised.
 */
export async function mayDownload(step: EgressScope, v: JobVolume, path: string, committed = 0, month = monthOf(step.now)): Promise<boolean> {
  if (unmetered(step)) return true;
  if (month < v.month) return false;
  const used = egressUsed(step, month) + committed;
  // An oversized volume alone in its month (the plan warned), also after part of it was fetched.
  if (used - (v.downloadedByMonth?.[month] ?? 0) <= 0) return true;
  const partial = await partialSize(path);
  return used + (v.storedSize - partial) <= monthCap(step.job);
}
