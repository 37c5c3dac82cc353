/**
 * `zbk restore run`: one step of a persisted restore state machine, meant to
 * be run daily from a timer (or in a loop with `--wait`). Each run does the
 * right next thing for every volume of the saved plan, in chain order:
 *
 *   scheduled → (its month's request time) restore requested → restoring →
 *   readable → (its calendar month, within the month's allowance)
 *   downloaded and verified part by part into the staging dir → staged →
 *   (all volumes of the next stream in chain order staged) zfs receive →
 *   received, staged files deleted.
 *
 * Each step starts with one look at the store (./poll.ts): the restore
 * states of its volumes listed (one LIST per 1,000 objects on S3, HEAD only
 * where a listing cannot tell), then the thaws due now are requested
 * together, paced (./thaw-batch.ts, ./thaw-pacer.ts: at most 500 requests
 * per second, within AWS's 1,000 per account and region), then each volume
 * is taken as far as it can go.
 *
 * Invariants:
 * - The passphrase is checked (key file opened) before any request that
 *   costs money; every object is looked at once (listed, or HEADed) before
 *   the first restore request, so a missing object is named before
 *   anything is spent.
 * - A restore is requested only when the store (its listing, or HEAD) says
 *   the object is archived with no copy and none running; a copy that
 *   expired before its download is requested again (and counted).
 * - Verified bytes on disk are never fetched again (downloadVolume resumes);
 *   a crash loses at most the part in flight.
 * - Received streams are read back from ZFS (snapshot guids on the target),
 *   so a crash between `zfs receive` and the state write is harmless.
 * - In `free` mode a month's downloads never exceed the plan's monthly
 *   capacity, by the injected clock's calendar month.
 * - Live receive: when every volume of the next stream to receive is
 *   staged or readable and allowed now, its `zfs receive` starts with its
 *   first volume and is fed each part's plaintext as soon as the part
 *   authenticates while being downloaded (or re-verified on disk), instead
 *   of after the whole stream is staged and read back. The downloads still
 *   stage and fsync every volume exactly as before, so a crash, a kill or a
 *   failed receive leaves the same resumable state; the decisions on what to
 *   request and download are unchanged. If a volume of that stream is not
 *   staged after all, the receive is killed before it sees the end of its
 *   input and the stream is received later from the staged files.
 *
 * This file is the use case's entry: the order of one step and the `--wait`
 * loop. The step's parts, each in its own module: ./step.ts (what they
 * share), ./target.ts (claiming and checking the target), ./poll.ts (what
 * the store says), ./preflight.ts, ./thaw.ts and ./thaw-batch.ts
 * (requests), ./egress.ts (the monthly allowance),
 * ./advance-volume.ts (one volume's next move), ./staging.ts (downloads),
 * ./receive.ts and ./live-receive.ts, ./damage.ts, ./next-action.ts.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import type { Keyring } from '../../crypto/types.js';
import { describeHolder } from '../../manifest/lock.js';
import { AbortError } from '../../pipeline/errors.js';
import { createPartOpener, type PartOpener } from '../../pipeline/part-opener.js';
import { lockManifest, openKeyring, openManifest, type ServiceContext } from '../context.js';
import { advanceVolume } from './advance-volume.js';
import { applyKnownDamage, isBlocked, restoreBlock, type RestoreBlock } from './damage.js';
import { reportSharedEgress, type SharedEgress } from './egress.js';
import { loadJob, saveJob, type NextAction } from './job.js';
import { afterLiveVolume, liveFor, sinkOf } from './live-receive.js';
import { nextAction } from './next-action.js';
import { buildJob } from './plan.js';
import { pollOf } from './poll.js';
import { preflight } from './preflight.js';
import { receiveReady } from './receive.js';
import { RestoreStep, type RestoreRunOptions, type StepOutcome } from './step.js';
import { claimTarget, syncReceived, targetHoldsSnapshot, targetPort } from './target.js';
import { extendExpiring } from './thaw.js';
import { requestDueThaws } from './thaw-batch.js';

export type { RestoreRunOptions } from './step.js';
export type { SharedEgress } from './egress.js';

export interface RestoreRunResult {
  dataset: string;
  target: string;
  snapshot: string;
  done: boolean;
  /** Volume keys whose restore was requested by this invocation (re-requests included). */
  requested: string[];
  /** Volume keys downloaded (completed) by this invocation. */
  downloaded: string[];
  /** Snapshots received into the target by this invocation. */
  received: string[];
  /** Stored bytes fetched from the store by this invocation. */
  bytesDownloaded: number;
  /** Runs of the state machine (1 without --wait). */
  steps: number;
  next: NextAction;
  /** Bytes the other restores of this repository downloaded in this calendar month (last step), when any: they share the allowance. */
  sharedEgress: SharedEgress | null;
  /** Volume keys this invocation found damaged (missing, or failing authentication): never fetched again. */
  damaged: string[];
  /** What stops the restore (damaged objects), what is still restorable and the remedy; null when nothing does. */
  blocked: RestoreBlock | null;
}

/** One step: every volume of the job taken as far as it can go now, in chain order. */
async function advanceJob(step: RestoreStep): Promise<StepOutcome> {
  await claimTarget(step);
  if (step.job.finishedAt) return finished(step);
  await syncReceived(step);
  // What verify (or an earlier run) found damaged is never fetched (see ./damage.ts).
  if (applyKnownDamage(step.manifest, step.job) > 0) step.save();
  await advanceVolumes(step);
  await receiveReady(step);
  step.now = step.ctx.now();
  step.out.next = nextAction(step);
  step.out.done = step.out.next.kind === 'done';
  step.out.blocked = restoreBlock(step.manifest, step.job);
  if (step.out.done && !step.job.finishedAt) {
    step.job.finishedAt = step.now.toISOString();
    await targetPort(step).finish(step);
    step.manifest.logEvent('restore-finished', step.job.dataset, { target: step.target, snapshot: step.job.snapshot.name });
  }
  step.job.next = step.out.next;
  step.save();
  return step.out;
}

/**
 * The volumes' part of a step: one listing of their restore states for the
 * whole step (./poll.ts), the preflight on the first run, the thaws due now
 * (./thaw-batch.ts), then every volume taken as far as it can go, in chain
 * order (a live receive fed as its volumes download).
 */
export async function advanceVolumes(step: RestoreStep): Promise<void> {
  await pollOf(step).refresh();
  if (!step.job.preflightDone) await preflight(step);
  reportSharedEgress(step);
  await extendExpiring(step);
  await requestDueThaws(step);
  for (const v of step.job.volumes) {
    if (v.phase === 'received' || isBlocked(step.job, v)) continue;
    step.checkAbort();
    step.now = step.ctx.now();
    try {
      const live = await liveFor(step, v);
      await advanceVolume(step, v, live ? sinkOf(live, v) : undefined);
      if (live) await afterLiveVolume(step, live, v);
    } catch (err) {
      await step.abortLive(err);
      throw err;
    }
  }
  await step.abortLive(new AbortError('live receive left unfinished'));
  if (step.liveError !== null) throw step.liveError;
}

/**
 * A finished restore stays done: snapshots destroyed on the target since
 * (pruning, or the user) are never scheduled, requested or downloaded
 * again. Restoring anew takes a new "zbk restore plan".
 */
async function finished(step: RestoreStep): Promise<StepOutcome> {
  if (!(await targetHoldsSnapshot(step))) {
    step.ctx.log.warn(
      `the restore of ${step.job.dataset} finished at ${step.job.finishedAt}, but ${step.target} no longer has @${step.job.snapshot.name}: nothing is fetched again; run "zbk restore plan ${step.job.dataset}" to restore it anew`,
    );
  }
  step.out.next = step.job.next?.kind === 'done' ? step.job.next : { kind: 'done', at: null, what: `restored @${step.job.snapshot.name} into ${step.target}` };
  step.out.done = true;
  return step.out;
}

/**
 * The part opener of one `restoreRun`, shared by its steps: a `--wait` run
 * keeps one worker and one set of part buffers for all its steps instead of
 * leaving a set per step for the garbage collector.
 */
class OpenerCache {
  private current: { keyId: string; opener: PartOpener } | null = null;

  async for(keyring: Keyring): Promise<PartOpener> {
    if (this.current?.keyId === keyring.keyId) return this.current.opener;
    await this.close();
    this.current = { keyId: keyring.keyId, opener: createPartOpener(keyring) };
    return this.current.opener;
  }

  async close(): Promise<void> {
    const c = this.current;
    this.current = null;
    await c?.opener.close();
  }
}

/** One step of the state machine under the manifest lock. */
async function stepUnderLock(ctx: ServiceContext, opts: RestoreRunOptions, openers: OpenerCache): Promise<StepOutcome> {
  // The passphrase is checked first: nothing below may spend money with a wrong one.
  const keyring = await openKeyring(ctx);
  const lock = await lockManifest(ctx.config, {
    wait: true,
    command: 'zbk restore run',
    onWait: (h) => ctx.log.info(`waiting for ${describeHolder(h)} to finish…`),
  });
  const manifest = openManifest(ctx, keyring);
  try {
    let job = loadJob(manifest, opts.dataset);
    if (!job) {
      job = buildJob(ctx, manifest, { dataset: opts.dataset }, ctx.now());
      saveJob(manifest, job);
      ctx.log.info(`no saved restore plan for ${opts.dataset}: planned one with the configured defaults (zbk restore status shows it)`);
    }
    return await advanceJob(new RestoreStep(ctx, manifest, keyring, await openers.for(keyring), job, opts));
  } finally {
    manifest.close();
    lock.release();
  }
}

/**
 * Run the restore of `opts.dataset` one step, or with `wait` until it is
 * done or nothing can happen before a future date (then the timer's next
 * run continues).
 */
export async function restoreRun(ctx: ServiceContext, opts: RestoreRunOptions): Promise<RestoreRunResult> {
  const sleep = opts.sleep ?? ((ms: number, signal?: AbortSignal) => sleepMs(ms, undefined, signal ? { signal } : {}));
  const initial = opts.pollInitialMs ?? 5000;
  const max = opts.pollMaxMs ?? 15 * 60_000;
  const result: RestoreRunResult = {
    dataset: opts.dataset,
    target: opts.target,
    snapshot: '',
    done: false,
    requested: [],
    downloaded: [],
    received: [],
    bytesDownloaded: 0,
    steps: 0,
    next: { kind: 'poll', at: null, what: '' },
    sharedEgress: null,
    damaged: [],
    blocked: null,
  };
  let delay = initial;
  const openers = new OpenerCache();
  try {
    return await runSteps();
  } finally {
    await openers.close();
  }

  async function runSteps(): Promise<RestoreRunResult> {
    for (;;) {
      const o = await stepUnderLock(ctx, opts, openers);
      result.steps++;
      result.snapshot = o.snapshot;
      result.requested.push(...o.requested);
      result.downloaded.push(...o.downloaded);
      result.received.push(...o.received);
      result.bytesDownloaded += o.bytes;
      result.next = o.next;
      result.done = o.done;
      result.sharedEgress = o.sharedEgress;
      result.damaged.push(...o.damaged);
      result.blocked = o.blocked;
      if (!opts.wait || o.next.kind !== 'poll') return result;
      const progressed = o.requested.length + o.downloaded.length + o.received.length > 0;
      if (progressed) delay = initial;
      ctx.log.info(`${o.next.what}; checking again in ${Math.round(delay / 1000)} s`);
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, max);
    }
  }
}
