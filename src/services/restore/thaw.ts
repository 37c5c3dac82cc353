/**
 * Thaw requests of a restore step: asking the store for a readable copy of
 * an archived object (for how many days), keeping a copy alive until its
 * download, asking again for one that expired first, and what each request
 * costs (counted per month in the job).
 *
 * A thaw costs money whether or not its copy is downloaded, so one is asked
 * for only when the allowance of the month its copy will be downloaded in
 * can take it (mayRequest, with ./egress.ts).
 *
 * Every RestoreObject goes through the store's pacer (./thaw-pacer.ts: at
 * most 500 requests per second, 32 in flight); the thaws due at the start
 * of a step are asked for together (./thaw-batch.ts).
 */
import { addDays, restoreCost } from '../../cost/model.js';
import type { RestoreOutcome, RestoreState } from '../../store/object-store.js';
import { isBlocked } from './damage.js';
import { mayDownload, partialSize, unmetered } from './egress.js';
import { monthOf, stagedPath, type JobVolume } from './job.js';
import { pollOf } from './poll.js';
import type { RestoreStep } from './step.js';
import { thawPacer } from './thaw-pacer.js';

export const DAY_MS = 86_400_000;
/** Thaw time assumed when a restore is requested off schedule (AWS: Bulk ≤ 48 h, Standard ≤ 12 h). */
export const LEAD_DAYS = { Bulk: 2, Standard: 0.5 } as const;
/** A restored copy about to be downloaded is extended when it expires sooner than this … */
const EXTEND_BELOW_DAYS = 1;
/** … by this many days from now. */
const EXTEND_DAYS = 2;
/** Download window given to a copy requested off schedule. */
const LATE_DOWNLOAD_DAYS = 7;
/** A thaw request counts as waiting (see waitingBytes) for at most this long without a copy seen. */
const WAITING_REQUEST_DAYS = 14;

/** `Days` for a request now: the plan's, or longer when off schedule, so the copy outlives its download. */
function restoreDays(step: RestoreStep, v: JobVolume): number {
  const m = step.planMonth(v);
  const planned = m?.restoreDays ?? 1;
  const downloadBy = m ? Date.parse(m.downloadBy) : 0;
  const onSchedule = m !== undefined && step.now.getTime() <= Date.parse(m.requestAt) + DAY_MS;
  if (onSchedule) return planned;
  const lateBy = addDays(step.now, LEAD_DAYS[step.job.options.tier] + LATE_DOWNLOAD_DAYS).getTime();
  return Math.max(1, Math.ceil((Math.max(downloadBy, lateBy) - step.now.getTime()) / DAY_MS) + 1);
}

/**
 * Thaws asked for together (./thaw-batch.ts): each outcome is recorded in
 * the job as usual, but the job is saved, the events logged and the log
 * line written by the batch, once per group of requests, instead of once
 * per request (a job of thousands of volumes is a large value to write).
 */
export interface ThawBatch {
  /** Thaws started, for the batch's event and log line. */
  started: { key: string; days: number }[];
  /** Set once a request failed: the requests still waiting for their turn are not sent (ThawBatchStopped). */
  stopped: boolean;
}

/** A request of a stopped batch that was not sent. */
export class ThawBatchStopped extends Error {
  constructor() {
    super('not sent: an earlier restore request of the batch failed');
  }
}

/** Whether `v`'s restore may not be requested yet: its month's request time, or its deferral, is still ahead. */
export function beforeRequestTime(step: RestoreStep, v: JobVolume): boolean {
  if (unmetered(step)) return false;
  const month = step.planMonth(v);
  const now = step.now.getTime();
  return (month !== undefined && now < Date.parse(month.requestAt)) || (!!v.notBefore && now < Date.parse(v.notBefore));
}

/**
 * The allowance of the month `v`'s copy would be downloaded in is used up
 * (mayRequest said no): a copy thawed now would expire unused, so ask again
 * just before the month after that one. The caller saves.
 */
export function deferThaw(step: RestoreStep, v: JobVolume): void {
  const lead = LEAD_DAYS[step.job.options.tier];
  const d = addDays(step.now, lead);
  v.notBefore = addDays(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)), -lead).toISOString();
  if (v.phase !== 'downloading') v.phase = 'scheduled';
}

/** One RestoreObject, paced (./thaw-pacer.ts); the step's poll learns the state it leaves. */
async function sendRestore(step: RestoreStep, v: JobVolume, days: number, batch?: ThawBatch): Promise<RestoreOutcome> {
  const store = step.ctx.store;
  const outcome = await thawPacer(store).run(() => {
    step.checkAbort();
    if (batch?.stopped) throw new ThawBatchStopped();
    return store.requestRestore(v.key, days, step.job.options.tier);
  });
  const after: Record<RestoreOutcome, RestoreState | null> = {
    started: { state: 'in-progress' },
    'in-progress': { state: 'in-progress' },
    // A copy whose expiry moved (to about now + days): a HEAD tells it exactly when it matters.
    'already-restored': null,
    'not-archived': { state: 'not-archived' },
  };
  pollOf(step).noteRequested(v, after[outcome]);
  return outcome;
}

function spend(step: RestoreStep, bytes: number, days: number, objects: number, retrieval: boolean): void {
  const c = restoreCost({ bytes, objects, tier: step.job.options.tier, days, freeEgressGB: Number.MAX_SAFE_INTEGER }, step.prices);
  const m = monthOf(step.now);
  const s = (step.job.spentByMonth[m] ??= { retrieval: 0, requests: 0, tempStorage: 0 });
  if (retrieval) s.retrieval += c.retrieval;
  s.requests += c.requests;
  s.tempStorage += c.tempStorage;
}

/**
 * Before any download, extend every restored copy this run may download
 * that is about to expire (keepCopy): the downloads of the volumes before
 * it may outlast it.
 */
export async function extendExpiring(step: RestoreStep): Promise<void> {
  // In chain order, as the run downloads them: only what this month's cap lets through is kept.
  let committed = 0;
  for (const v of step.job.volumes) {
    if (v.phase !== 'restoring' && v.phase !== 'ready' && v.phase !== 'downloading') continue;
    if (v.lastError !== null) continue; // a run stopped by it would extend the copy again and again
    if (isBlocked(step.job, v)) continue; // behind a damaged stream: never downloaded
    const path = step.path(v);
    if (!(await mayDownload(step, v, path, committed))) continue;
    const partial = await partialSize(path);
    committed += Math.max(0, v.storedSize - partial);
    // A copy last seen with days to live needs no look here (advanceVolume looks at it anyway).
    if (v.restoreExpiry !== null && Date.parse(v.restoreExpiry) - step.now.getTime() >= EXTEND_BELOW_DAYS * DAY_MS) continue;
    // The step's listing tells, else a HEAD (./poll.ts).
    const info = await pollOf(step).look(v);
    if (info?.restore.state !== 'restored') continue;
    v.restoreExpiry = info.restore.expiry.toISOString();
    await keepCopy(step, v, info.restore.expiry);
  }
}

/** Record a thaw that started now (in a batch: the batch logs and saves). */
function thawStarted(step: RestoreStep, v: JobVolume, days: number, batch?: ThawBatch): void {
  const tier = step.job.options.tier;
  v.requestedAt = step.now.toISOString();
  v.restoreRequests++;
  v.restoreExpiry = null;
  v.phase = 'restoring'; // a partial download stays on disk and is resumed
  spend(step, v.storedSize, days, 1, true);
  step.out.requested.push(v.key);
  if (batch) {
    batch.started.push({ key: v.key, days });
    return;
  }
  step.manifest.logEvent('restore-requested', step.job.dataset, { key: v.key, days, tier });
  step.ctx.log.info(`requested a ${tier} restore of ${v.key} for ${days} day(s)`);
  step.save();
}

/**
 * A restored copy about to be downloaded that expires within
 * EXTEND_BELOW_DAYS is extended by EXTEND_DAYS (a request on a restored
 * object only moves its expiry: a request fee and two days of temporary
 * storage, against a new thaw if it expired in the middle of a long
 * download). Longer waits are not bridged this way: a month of
 * temporary storage costs more than thawing again. True when the copy
 * is still readable.
 */
export async function keepCopy(step: RestoreStep, v: JobVolume, expiry: Date): Promise<boolean> {
  if (expiry.getTime() - step.now.getTime() >= EXTEND_BELOW_DAYS * DAY_MS) return true;
  const outcome = await sendRestore(step, v, EXTEND_DAYS);
  switch (outcome) {
    case 'already-restored':
      v.restoreRequests++;
      v.restoreExpiry = addDays(step.now, EXTEND_DAYS).toISOString();
      spend(step, v.storedSize, EXTEND_DAYS, 1, false);
      step.manifest.logEvent('restore-extended', step.job.dataset, { key: v.key, days: EXTEND_DAYS });
      step.ctx.log.info(`extended the restored copy of ${v.key}, which expired at ${expiry.toISOString()}, by ${EXTEND_DAYS} day(s) for its download`);
      step.save();
      return true;
    case 'started':
      // It expired between HEAD and the request: a new thaw, of EXTEND_DAYS (it is due for download now).
      v.expiredCopies++;
      step.manifest.logEvent('restore-expired', step.job.dataset, { key: v.key, requestedAt: v.requestedAt, expiry: v.restoreExpiry });
      thawStarted(step, v, EXTEND_DAYS);
      return false;
    case 'in-progress':
      v.phase = 'restoring';
      step.save();
      return false;
    case 'not-archived':
      return true;
  }
}

/**
 * The object is archived with no copy: ask for one. True when it is
 * readable right away. With `batch`, the job is not saved here (see ThawBatch).
 */
export async function requestRestore(step: RestoreStep, v: JobVolume, batch?: ThawBatch): Promise<boolean> {
  if (v.requestedAt !== null) {
    // The store says archived although we asked before: the copy expired before its download finished.
    v.expiredCopies++;
    step.ctx.log.warn(`the restored copy of ${step.describe(v)} expired before its download finished: requesting it again`);
    step.manifest.logEvent('restore-expired', step.job.dataset, { key: v.key, requestedAt: v.requestedAt, expiry: v.restoreExpiry });
  }
  const days = restoreDays(step, v);
  const outcome = await sendRestore(step, v, days, batch);
  switch (outcome) {
    case 'started':
      thawStarted(step, v, days, batch);
      return false;
    case 'already-restored':
      v.restoreRequests++;
      v.requestedAt ??= step.now.toISOString();
      spend(step, v.storedSize, days, 1, false);
      if (!batch) step.save();
      return true;
    case 'in-progress':
      v.requestedAt ??= step.now.toISOString();
      v.phase = 'restoring'; // a partial download stays on disk and is resumed
      if (!batch) step.save();
      return false;
    case 'not-archived':
      return true;
  }
}

/**
 * Like mayDownload, before a thaw: copies already thawed or
 * thawing and not yet downloaded, this restore's and the other restores'
 * of the repository, count as spent too. Otherwise two restores at once
 * would each thaw a month's worth, and the copies the allowance cannot
 * take before they expire would be thawed (and paid for) again.
 */
export async function mayRequest(step: RestoreStep, v: JobVolume, path: string, batch?: { waiting: Waiting; pending: number }): Promise<boolean> {
  if (unmetered(step)) return mayDownload(step, v, path);
  const downloadMonth = thawDownloadMonth(step);
  const waiting = batch?.waiting ?? (await waitingBytes(step, downloadMonth));
  const others = waiting.total - (waiting.of.get(v) ?? 0) + (batch?.pending ?? 0);
  return mayDownload(step, v, path, others, downloadMonth);
}

/**
 * The month a copy thawed now can first be downloaded in, whose allowance
 * pays for it: a request in the last days of a month is downloaded in the
 * next one.
 */
export function thawDownloadMonth(step: RestoreStep): string {
  return monthOf(addDays(step.now, LEAD_DAYS[step.job.options.tier]));
}

/** Stored bytes waiting for download (see waitingBytes): in all, and by volume. */
export interface Waiting {
  total: number;
  of: Map<JobVolume, number>;
}

/**
 * Stored bytes still to download of copies that are thawing, or thawed and
 * not expired, planned for `month` or earlier, in every unfinished restore of
 * the repository (mayRequest leaves out the volume it decides on). A request
 * older than WAITING_REQUEST_DAYS with no copy seen since belongs to an
 * abandoned run and is not counted, so it cannot block thaws for ever.
 */
export async function waitingBytes(step: RestoreStep, month: string): Promise<Waiting> {
  const now = step.now.getTime();
  const out: Waiting = { total: 0, of: new Map() };
  for (const j of [step.job, ...step.others.filter((o) => !o.finishedAt)]) {
    for (const u of j.volumes) {
      if (u.month > month) continue;
      const expiry = u.restoreExpiry ? Date.parse(u.restoreExpiry) : null;
      const requested = u.requestedAt ? Date.parse(u.requestedAt) : null;
      const thawing = u.phase === 'restoring' && requested !== null && now - requested <= WAITING_REQUEST_DAYS * DAY_MS;
      const thawed = (u.phase === 'ready' || u.phase === 'downloading') && expiry !== null && expiry > now;
      if (!thawing && !thawed) continue;
      const partial = await partialSize(stagedPath(step.ctx.config.restore.stagingDir, j.dataset, u));
      const bytes = Math.max(0, u.storedSize - partial);
      out.total += bytes;
      out.of.set(u, bytes);
    }
  }
  return out;
}
