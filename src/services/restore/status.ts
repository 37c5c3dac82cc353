/**
 * `zbk restore status`: every saved restore, per planned month and per
 * volume, with the money spent so far against the plan and the next action.
 * Reads the manifest only (no store access, no passphrase).
 */
import { configPriceTable } from '../../cost/providers/index.js';
import { egressCost, gb } from '../../cost/model.js';
import { targetWord } from '../push/source.js';
import { openManifest, type ServiceContext } from '../context.js';
import type { Manifest } from '../../manifest/manifest.js';
import { restoreBlock, type RestoreBlock } from './damage.js';
import { listJobs, loadJob, type NextAction, type RestoreJob, type VolumePhase } from './job.js';

export interface RestoreStatusVolume {
  key: string;
  snapshot: string;
  phase: VolumePhase;
  bytes: number;
  downloadedBytes: number;
  restoreRequests: number;
  restoreExpiry: string | null;
  lastError: string | null;
}

export interface RestoreStatusMonth {
  month: string;
  volumes: RestoreStatusVolume[];
  bytes: number;
  /** Planned cost of the month (USD). */
  plannedCost: number;
  /** Spent in this calendar month so far: restore requests plus egress above the allowance. */
  spent: number;
  /** Stored bytes actually downloaded in this calendar month. */
  downloadedBytes: number;
}

export interface RestoreStatusJob {
  dataset: string;
  snapshot: string;
  target: string | null;
  mode: string;
  tier: string;
  months: RestoreStatusMonth[];
  totalBytes: number;
  receivedSnapshots: string[];
  plannedCost: number;
  spent: number;
  finish: string;
  finishedAt: string | null;
  next: NextAction | null;
  /** Damaged objects that stop this restore, the snapshots still restorable and the remedy (as of now); null when none. */
  blocked: RestoreBlock | null;
}

export interface RestoreStatusResult {
  restores: RestoreStatusJob[];
}

function describeJob(ctx: ServiceContext, manifest: Manifest, job: RestoreJob): RestoreStatusJob {
  const prices = configPriceTable(ctx.config.store, ctx.config.prices);
  const snapOf = new Map(job.streams.map((s) => [s.streamId, s.to.name]));
  const spentIn = (month: string): number => {
    const s = job.spentByMonth[month];
    const restore = s ? s.retrieval + s.requests + s.tempStorage : 0;
    const egress = egressCost(gb(job.egressByMonth[month] ?? 0), prices, job.options.freeEgressGB, job.options.reserveGB);
    return restore + egress;
  };
  const planned = new Set(job.plan.months.map((m) => m.month));
  const months: RestoreStatusMonth[] = job.plan.months.map((m) => {
    const vols = job.volumes.filter((v) => v.month === m.month);
    return {
      month: m.month,
      volumes: vols.map((v) => ({
        key: v.key,
        snapshot: snapOf.get(v.streamId) ?? '',
        phase: v.phase,
        bytes: v.storedSize,
        downloadedBytes: v.downloadedBytes,
        restoreRequests: v.restoreRequests,
        restoreExpiry: v.restoreExpiry,
        lastError: v.lastError,
      })),
      bytes: m.bytes,
      plannedCost: m.cost.total,
      spent: spentIn(m.month),
      downloadedBytes: job.egressByMonth[m.month] ?? 0,
    };
  });
  // Months outside the plan where something was spent (a late run, a re-request).
  const extra = new Set([...Object.keys(job.spentByMonth), ...Object.keys(job.egressByMonth)].filter((m) => !planned.has(m)));
  for (const m of [...extra].sort()) {
    months.push({ month: m, volumes: [], bytes: 0, plannedCost: 0, spent: spentIn(m), downloadedBytes: job.egressByMonth[m] ?? 0 });
  }
  months.sort((a, b) => (a.month < b.month ? -1 : a.month > b.month ? 1 : 0));
  return {
    dataset: job.dataset,
    snapshot: job.snapshot.name,
    target: job.target,
    mode: job.options.mode,
    tier: job.options.tier,
    months,
    totalBytes: job.plan.totalBytes,
    receivedSnapshots: job.streams.filter((s) => s.received).map((s) => s.to.name),
    plannedCost: job.plan.totalCost,
    spent: months.reduce((a, m) => a + m.spent, 0),
    finish: job.plan.finish,
    finishedAt: job.finishedAt,
    next: job.next ?? { kind: 'poll', at: null, what: `run "zbk restore run ${job.dataset} --target ${targetWord(job.dataset)}"` },
    // Recomputed from the manifest: a push --full since the last run changes the remedy.
    blocked: restoreBlock(manifest, job),
  };
}

/** Status of the saved restore of `dataset`, or of every saved restore. */
export async function restoreStatus(ctx: ServiceContext, dataset?: string): Promise<RestoreStatusResult> {
  const manifest = openManifest(ctx, null);
  try {
    const jobs = dataset ? [loadJob(manifest, dataset)].filter((j): j is RestoreJob => j !== null) : listJobs(manifest);
    return { restores: jobs.map((j) => describeJob(ctx, manifest, j)) };
  } finally {
    manifest.close();
  }
}
