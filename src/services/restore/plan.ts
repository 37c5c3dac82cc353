/**
 * `zbk restore plan`: resolve the chain that restores a snapshot, schedule
 * its volumes into months with the pure planner, and save the plan (keeping
 * the progress of an earlier plan of the same chain).
 */
import { configPriceTable } from '../../cost/providers/index.js';
import { BYTES_PER_GB } from '../../cost/prices.js';
import { formatUSDPair } from '../../cli/format.js';
import { UsageError } from '../../errors.js';
import { describeHolder } from '../../manifest/lock.js';
import { SnapshotNotPushedError } from '../../manifest/errors.js';
import type { Manifest } from '../../manifest/manifest.js';
import { planRestore, type RestoreMode, type RestorePlan } from '../../planner/restore-plan.js';
import { lockManifest, openManifest, type ServiceContext } from '../context.js';
import { chainVolumes, isLocalStore, listJobs, loadJob, monthOf, saveJob, type JobStream, type JobVolume, type RestoreJob } from './job.js';

export interface RestorePlanServiceOptions {
  dataset: string;
  /** Short snapshot name (default: the last pushed). */
  snapshot?: string;
  freeEgressGB?: number;
  reserveGB?: number;
  /** Fastest schedule within this many USD. */
  budgetUSD?: number;
  /** Everything now. */
  asap?: boolean;
  tier?: 'Bulk' | 'Standard';
  /** Days allowed per month for the downloads after the thaw (planner default 7). */
  downloadDays?: number;
  /** Plan without saving. */
  dryRun?: boolean;
  /** Start over: keep none of an earlier plan's progress or target (its egress and spending history stay). */
  reset?: boolean;
}

export interface RestorePlanResult extends RestorePlan {
  dataset: string;
  snapshot: string;
  chain: { streamId: string; kind: 'full' | 'incremental'; from: string | null; to: string; volumes: number; bytes: number }[];
  saved: boolean;
  /** True when an earlier plan's progress (requests, downloads) was kept. */
  keptProgress: boolean;
}

/** Build (but do not save) a job for `opts` from the manifest's chain, starting at `now`. */
export function buildJob(ctx: ServiceContext, manifest: Manifest, opts: RestorePlanServiceOptions, now: Date): RestoreJob {
  const { dataset } = opts;
  let guid: bigint | undefined;
  let name: string;
  if (opts.snapshot) {
    // Its recorded name (the newest of that name, if it was reused), or (btrfs) the last part of its path when only one has it.
    const all = manifest.snapshots(dataset);
    const named = all.filter((s) => s.name === opts.snapshot);
    const byLast = [...new Set(all.filter((s) => s.name.endsWith(`/${opts.snapshot}`)).map((s) => s.name))];
    const matches = named.length > 0 ? named : byLast.length === 1 ? all.filter((s) => s.name === byLast[0]) : [];
    const row = matches.reduce<(typeof all)[number] | undefined>((m, s) => (m === undefined || s.createtxg > m.createtxg ? s : m), undefined);
    if (!row) throw new SnapshotNotPushedError(dataset, `snapshot @${opts.snapshot}`);
    guid = row.guid;
    name = row.name;
  } else {
    const last = manifest.lastPushedSnapshot(dataset);
    if (!last) throw new SnapshotNotPushedError(dataset);
    guid = last.guid;
    name = last.name;
  }
  const chain = manifest.chainFor(dataset, guid);
  const volumes = chainVolumes(chain);
  if (opts.asap && opts.budgetUSD !== undefined) throw new UsageError('choose one of --asap and --budget');
  const mode: RestoreMode = opts.asap ? 'asap' : opts.budgetUSD !== undefined ? 'budget' : 'free';
  const rc = ctx.config.restore;
  const prices = configPriceTable(ctx.config.store, ctx.config.prices);
  const options: RestoreJob['options'] = {
    mode,
    tier: opts.tier ?? rc.tier,
    // The restore's own setting, else the price table's (where `[prices] free_egress_gb_month` overrides it).
    freeEgressGB: opts.freeEgressGB ?? rc.freeEgressGB ?? prices.freeEgressGBPerMonth,
    reserveGB: opts.reserveGB ?? rc.reserveGB,
    ...(opts.budgetUSD === undefined ? {} : { budgetUSD: opts.budgetUSD }),
    ...(opts.downloadDays === undefined ? {} : { downloadDays: opts.downloadDays }),
  };
  // What this repository's restores downloaded this month already leaves less of its allowance (it is per account).
  const usedThisMonth = listJobs(manifest).reduce((a, j) => a + (j.egressByMonth[monthOf(now)] ?? 0), 0);
  const plan = planRestore(volumes, now, { ...options, usedThisMonthGB: usedThisMonth / BYTES_PER_GB }, prices);
  const monthOfKey = new Map<string, string>();
  for (const m of plan.months) for (const k of m.volumes) monthOfKey.set(k, m.month);
  const streams: JobStream[] = chain.map((s) => ({
    streamId: s.streamId,
    kind: s.from ? 'incremental' : 'full',
    from: s.from?.name ?? null,
    to: { name: s.to.name, guid: s.to.guid.toString() },
    received: false,
    receivedAt: null,
  }));
  const jobVolumes: JobVolume[] = volumes.map((v) => ({
    key: v.key,
    streamId: v.streamId,
    streamIndex: v.streamIndex,
    volumeIndex: v.volumeIndex,
    storedSize: v.record.storedSize,
    plaintextSize: v.record.plaintextSize,
    plaintextSha256: v.record.plaintextSha256,
    partCount: v.record.partCount,
    partSize: v.record.partSize,
    month: monthOfKey.get(v.key) ?? plan.months[plan.months.length - 1]?.month ?? now.toISOString().slice(0, 7),
    phase: 'scheduled',
    requestedAt: null,
    restoreRequests: 0,
    restoreExpiry: null,
    downloadedBytes: 0,
    expiredCopies: 0,
    lastError: null,
  }));
  return {
    v: 1,
    dataset,
    snapshot: { name, guid: guid.toString() },
    createdAt: now.toISOString(),
    options,
    plan,
    streams,
    volumes: jobVolumes,
    target: null,
    force: false,
    fullReceiveStartedAt: null,
    egressByMonth: {},
    spentByMonth: {},
    preflightDone: false,
    next: null,
    finishedAt: null,
  };
}

/**
 * Carry an earlier job's progress over to a new plan of the same dataset:
 * per volume (by key) its requests, downloads and phase; the target, the
 * spending and egress so far. A different snapshot keeps only what still
 * applies (volumes are matched by key, streams by id). After a finished job,
 * or with `reset`, only the spending and egress history is kept: the new
 * plan starts over and its first run may choose any target.
 */
export function mergeProgress(fresh: RestoreJob, old: RestoreJob, opts: { reset?: boolean } = {}): boolean {
  // The month's egress and the money spent are history either way (the allowance is per account).
  fresh.egressByMonth = old.egressByMonth;
  fresh.spentByMonth = old.spentByMonth;
  // A finished restore (a drill, say) or an explicit reset starts over, into any target.
  if (opts.reset || old.finishedAt !== null) return false;
  let kept = false;
  const oldVols = new Map(old.volumes.map((v) => [v.key, v]));
  for (const v of fresh.volumes) {
    const o = oldVols.get(v.key);
    if (!o) continue;
    const { month } = v;
    // A volume damaged in the old job is looked at again: the next run marks it again if the manifest still records the damage.
    Object.assign(v, o, { month }, o.phase === 'damaged' ? { phase: 'scheduled', lastError: null } : {});
    kept = true;
  }
  const oldStreams = new Map(old.streams.map((s) => [s.streamId, s]));
  for (const s of fresh.streams) {
    const o = oldStreams.get(s.streamId);
    if (o) Object.assign(s, { received: o.received, receivedAt: o.receivedAt });
  }
  fresh.target = old.target;
  fresh.force = old.force;
  if (old.forcedTargetGuid !== undefined) fresh.forcedTargetGuid = old.forcedTargetGuid;
  fresh.fullReceiveStartedAt = old.fullReceiveStartedAt;
  if (old.fullReceiveStartedWallMs !== undefined) fresh.fullReceiveStartedWallMs = old.fullReceiveStartedWallMs;
  fresh.preflightDone = old.preflightDone && kept && fresh.volumes.every((v) => oldVols.has(v.key));
  return kept;
}

function describeChain(job: RestoreJob): RestorePlanResult['chain'] {
  return job.streams.map((s) => {
    const vols = job.volumes.filter((v) => v.streamId === s.streamId);
    return { streamId: s.streamId, kind: s.kind, from: s.from, to: s.to.name, volumes: vols.length, bytes: vols.reduce((a, v) => a + v.storedSize, 0) };
  });
}

/** Plan the restore of `opts.dataset` and save it (unless `dryRun`). Needs no passphrase: the plan spends nothing. */
export async function restorePlan(ctx: ServiceContext, opts: RestorePlanServiceOptions): Promise<RestorePlanResult> {
  const lock = await lockManifest(ctx.config, {
    wait: true,
    command: 'zbk restore plan',
    onWait: (h) => ctx.log.info(`waiting for ${describeHolder(h)} to finish…`),
  });
  const manifest = openManifest(ctx, null);
  try {
    const job = buildJob(ctx, manifest, opts, ctx.now());
    const old = loadJob(manifest, opts.dataset);
    const keptProgress = old ? mergeProgress(job, old, { reset: opts.reset === true }) : false;
    if (!opts.dryRun && job.plan.withinBudget === false) {
      // A plan over its budget is never saved: "restore run" would spend more than the user allowed.
      const [budget, cheapest] = formatUSDPair(opts.budgetUSD ?? 0, job.plan.totalCost);
      throw new UsageError(
        `no schedule stays within the budget of ${budget}: the cheapest costs ${cheapest} (see it with --dry-run); raise --budget, or plan without it`,
        'OVER_BUDGET',
      );
    }
    if (!opts.dryRun) {
      saveJob(manifest, job);
      manifest.logEvent('restore-planned', opts.dataset, { snapshot: job.snapshot.name, mode: job.options.mode, months: job.plan.months.length, totalBytes: job.plan.totalBytes });
    }
    if (isLocalStore(ctx.store)) job.plan.warnings.push(`${ctx.store.url} is a local directory: nothing to thaw and no egress, so "zbk restore run" restores everything at once`);
    for (const w of job.plan.warnings) ctx.log.warn(w);
    return { ...job.plan, dataset: opts.dataset, snapshot: job.snapshot.name, chain: describeChain(job), saved: !opts.dryRun, keptProgress };
  } finally {
    manifest.close();
    lock.release();
  }
}
