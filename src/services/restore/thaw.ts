/**
 * Thaw requests of a restore step: asking the store for a readable copy of
 * an archived object (for how many days), keeping a copy alive until its
 * download, asking again for one that expired first, and what each request
 * costs (counted per month in the job).
 *
 * A thaw costs money whether or not its copy is downloaded, so one is asked
 * for only when the allowance of the month its copy will be downloaded in
 * can take it (mayRequest, with ./egress.ts).
 */
import { addDays, restoreCost } from '../../cost/model.js';
import { isBlocked } from './damage.js';
import { mayDownload, partialSize, unmetered } from './egress.js';
import { monthOf, stagedPath, type JobVolume } from './job.js';
import type { RestoreStep } from './step.js';

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
    // A copy last seen with days to live needs no HEAD here (advanceVolume HEADs it anyway).
    if (v.restoreExpiry !== null && Date.parse(v.restoreExpiry) - step.now.getTime() >= EXTEND_BELOW_DAYS * DAY_MS) continue;
    const info = await step.ctx.store.head(v.key).catch(() => null);
    if (info?.restore.state !== 'restored') continue;
    v.restoreExpiry = info.restore.expiry.toISOString();
    await keepCopy(step, v, info.restore.expiry);
  }
}

/** Record a thaw that started now. */
function thawStarted(step: RestoreStep, v: JobVolume, days: number): void {
  const tier = step.job.options.tier;
  v.requestedAt = step.now.toISOString();
  v.restoreRequests++;
  v.restoreExpiry = null;
  v.phase = 'restoring'; // a partial download stays on disk and is resumed
  spend(step, v.storedSize, days, 1, true);
  step.out.requested.push(v.key);
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
  const outcome = await step.ctx.store.requestRestore(v.key, EXTEND_DAYS, step.job.options.tier);
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

/** The object is archived with no copy: ask for one. True when it is readable right away. */
export async function requestRestore(step: RestoreStep, v: JobVolume): Promise<boolean> {
  if (v.requestedAt !== null) {
    // HEAD says archived although we asked before: the copy expired before its download finished.
    v.expiredCopies++;
    step.ctx.log.warn(`the restored copy of ${step.describe(v)} expired before its download finished: requesting it again`);
    step.manifest.logEvent('restore-expired', step.job.dataset, { key: v.key, requestedAt: v.requestedAt, expiry: v.restoreExpiry });
  }
  const days = restoreDays(step, v);
  const tier = step.job.options.tier;
  const outcome = await step.ctx.store.requestRestore(v.key, days, tier);
  switch (outcome) {
    case 'started':
      thawStarted(step, v, days);
      return false;
    case 'already-restored':
      v.restoreRequests++;
      v.requestedAt ??= step.now.toISOString();
      spend(step, v.storedSize, days, 1, false);
      step.save();
      return true;
    case 'in-progress':
      v.requestedAt ??= step.now.toISOString();
      v.phase = 'restoring'; // a partial download stays on disk and is resumed
      step.save();
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
export async function mayRequest(step: RestoreStep, v: JobVolume, path: string): Promise<boolean> {
  if (unmetered(step)) return mayDownload(step, v, path);
  // The allowance that pays for it is that of the month its copy can first be downloaded in:
  // a request in the last days of a month is downloaded in the next one.
  const downloadMonth = monthOf(addDays(step.now, LEAD_DAYS[step.job.options.tier]));
  return mayDownload(step, v, path, await waitingBytes(step, v, downloadMonth), downloadMonth);
}

/**
 * Stored bytes still to download of copies that are thawing, or thawed and
 * not expired, planned for `month` or earlier, in every unfinished restore of
 * the repository (`v` itself excluded). A request older than
 * WAITING_REQUEST_DAYS with no copy seen since belongs to an abandoned run
 * and is not counted, so it cannot block thaws for ever.
 */
async function waitingBytes(step: RestoreStep, v: JobVolume, month: string): Promise<number> {
  const now = step.now.getTime();
  let total = 0;
  for (const j of [step.job, ...step.others.filter((o) => !o.finishedAt)]) {
    for (const u of j.volumes) {
      if (u === v || u.month > month) continue;
      const expiry = u.restoreExpiry ? Date.parse(u.restoreExpiry) : null;
      const requested = u.requestedAt ? Date.parse(u.requestedAt) : null;
      const thawing = u.phase === 'restoring' && requested !== null && now - requested <= WAITING_REQUEST_DAYS * DAY_MS;
      const thawed = (u.phase === 'ready' || u.phase === 'downloading') && expiry !== null && expiry > now;
      if (!thawing && !thawed) continue;
      const partial = await partialSize(stagedPath(step.ctx.config.restore.stagingDir, j.dataset, u));
      total += Math.max(0, u.storedSize - partial);
    }
  }
  return total;
}
