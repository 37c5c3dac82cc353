/**
 * The thaws due at the start of a restore step, asked for together before
 * any download: every volume whose request time has come, with nothing on
 * disk, that the step's listing (./poll.ts) shows archived with no copy (or
 * that this job never asked for and the listing could not tell: see
 * askDirectly), and
 * that the allowance of the month its copy will be downloaded in can take
 * (mayRequest, decided in chain order exactly as the volume loop would, each
 * chosen thaw counted as waiting for the next decision). The requests then
 * run in parallel at the store's pace (./thaw-pacer.ts: at most 500 per
 * second, 32 in flight), so a thousand-volume month is requested in
 * seconds, not one volume at a time between downloads.
 *
 * Each outcome is recorded in the job as a single request's is (./thaw.ts);
 * the job is saved, and one `restore-requested` event logged, per
 * SAVE_EVERY requests and at the end, instead of per request (the job of a
 * thousand-volume restore is a value of megabytes). A crash in between
 * leaves at most SAVE_EVERY + THAW_CONCURRENCY requests unrecorded: the next
 * run sees their thaws running in its listing and records them then
 * (requestRestore's 'in-progress'), without their request fee in the job's
 * spending.
 *
 * Volumes with something on disk (a staged or partial file) are left to the
 * volume loop (./advance-volume.ts), which verifies what is there first.
 */
import { existsSync } from 'node:fs';
import { isBlocked } from './damage.js';
import { unmetered } from './egress.js';
import type { JobVolume } from './job.js';
import { pollOf } from './poll.js';
import type { RestoreStep } from './step.js';
import { beforeRequestTime, deferThaw, mayRequest, requestRestore, thawDownloadMonth, ThawBatchStopped, waitingBytes, type ThawBatch } from './thaw.js';
import { thawPacer } from './thaw-pacer.js';

/** Requests recorded between two saves of the job. */
export const SAVE_EVERY = 200;

/** What the batch of a step did (the step's outcome lists the keys). */
export interface ThawBatchResult {
  /** Volumes found due, archived, with no copy. */
  archived: number;
  /** Thaws deferred: the month's allowance is used up. */
  deferred: number;
  /** RestoreObject requests sent. */
  requests: number;
  /** Of them, thaws started. */
  started: number;
}

/** Request every thaw due now (see the module comment). */
export async function requestDueThaws(step: RestoreStep): Promise<ThawBatchResult> {
  const result: ThawBatchResult = { archived: 0, deferred: 0, requests: 0, started: 0 };
  step.now = step.ctx.now();
  const asap = unmetered(step);
  const { job } = step;
  const due = job.volumes.filter((v) => {
    if (v.phase === 'received' || isBlocked(job, v) || beforeRequestTime(step, v)) return false;
    const path = step.path(v);
    return !existsSync(path) && !existsSync(`${path}.partial`);
  });
  if (due.length === 0) return result;
  const poll = pollOf(step);
  // A volume this job never asked for, listed without a state (archive class, no RestoreStatus in a
  // listing that showed none: AWS before any thaw of the listed objects, or an endpoint that ignores
  // the parameter) is asked for directly: the RestoreObject answer is its state (202: it was archived,
  // a thaw started; 409: one was running; 200: a copy was there, only its expiry moved), and any of them
  // is recorded as the volume loop would after a HEAD. Everything else the listings did not tell: HEAD,
  // in parallel.
  const askDirectly = (v: JobVolume): boolean => v.requestedAt === null && poll.listed(v)?.restore === null;
  await poll.resolve(due.filter((v) => !askDirectly(v)));

  const month = thawDownloadMonth(step);
  const waiting = asap ? null : await waitingBytes(step, month);
  const chosen: JobVolume[] = [];
  let pending = 0;
  let changed = false;
  for (const v of due) {
    if (isBlocked(job, v)) continue; // found missing just now
    if (!askDirectly(v) && poll.cached(v)?.restore.state !== 'archived') continue; // the volume loop takes it from there
    result.archived++;
    if (waiting) {
      if (!(await mayRequest(step, v, step.path(v), { waiting, pending }))) {
        deferThaw(step, v);
        result.deferred++;
        changed = true;
        continue;
      }
      pending += v.storedSize;
    }
    chosen.push(v);
  }
  if (chosen.length === 0) {
    if (changed) step.save();
    return result;
  }

  const tier = job.options.tier;
  const batch: ThawBatch = { started: [], stopped: false };
  const requestedBefore = step.out.requested.length;
  let unsaved = 0;
  const flush = (): void => {
    unsaved = 0;
    const byDays = new Map<number, string[]>();
    for (const s of batch.started.splice(0)) {
      const keys = byDays.get(s.days) ?? [];
      keys.push(s.key);
      byDays.set(s.days, keys);
    }
    for (const [days, keys] of byDays) step.manifest.logEvent('restore-requested', job.dataset, { keys, days, tier });
    step.save();
  };
  const pacer = thawPacer(step.ctx.store);
  step.ctx.log.info(`requesting ${chosen.length} ${tier} restore(s), at most ${pacer.rate} requests/s and ${pacer.concurrency} at once`);
  let firstError: { err: unknown } | null = null;
  await Promise.all(
    chosen.map(async (v) => {
      try {
        await requestRestore(step, v, batch);
      } catch (err) {
        if (!(err instanceof ThawBatchStopped)) firstError ??= { err };
        batch.stopped = true; // the requests still queued are not sent
        return;
      }
      result.requests++;
      if (++unsaved >= SAVE_EVERY) flush();
    }),
  );
  flush();
  result.started = step.out.requested.length - requestedBefore;
  const other = result.requests - result.started;
  step.ctx.log.info(`requested ${result.started} ${tier} restore(s)${other > 0 ? `; ${other} were running or readable already` : ''}`);
  if (firstError !== null) throw (firstError as { err: unknown }).err;
  return result;
}
