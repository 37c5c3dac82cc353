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
 * Invariants:
 * - The passphrase is checked (key file opened) before any request that
 *   costs money; every object is HEADed once before the first restore
 *   request, so a missing object is named before anything is spent.
 * - A restore is requested only when HEAD says the object is archived with
 *   no copy and none running; a copy that expired before its download is
 *   requested again (and counted).
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
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { sealedPartSize } from '../../crypto/index.js';
import type { Keyring } from '../../crypto/types.js';
import { addDays, restoreCost } from '../../cost/model.js';
import { BYTES_PER_GB, priceTable, type PriceTable } from '../../cost/prices.js';
import { IntegrityError, UsageError } from '../../errors.js';
import { describeHolder } from '../../manifest/lock.js';
import type { Manifest } from '../../manifest/manifest.js';
import { AbortError } from '../../pipeline/errors.js';
import { downloadVolume, openVolumeFiles, PlaintextFeed, type DownloadVolumeOptions, type PlaintextSink } from '../../pipeline/download.js';
import { createPartOpener, type PartOpener } from '../../pipeline/part-opener.js';
import type { RestoreMonth } from '../../planner/restore-plan.js';
import { ArchivedError, NotFoundError, RestoreInProgressError } from '../../store/errors.js';
import { ZfsError } from '../../zfs/errors.js';
import { lockManifest, openKeyring, openManifest, type ServiceContext } from '../context.js';
import { isLocalStore, listJobs, monthOf, recordOf, loadJob, saveJob, stagedPath, type JobStream, type JobVolume, type NextAction, type RestoreJob } from './job.js';
import { markReceiveStarted, mountAdvice, receiveRestartNote } from './receive-restart.js';
import { applyKnownDamage, blockedAction, clearMismatch, isBlocked, isStoredDamage, markDamaged, restoreBlock, type RestoreBlock } from './damage.js';
import { NeedsFetchError, OfflineStore } from './offline-store.js';
import { buildJob } from './plan.js';

const DAY_MS = 86_400_000;
/** Thaw time assumed when a restore is requested off schedule (AWS: Bulk ≤ 48 h, Standard ≤ 12 h). */
const LEAD_DAYS = { Bulk: 2, Standard: 0.5 } as const;
/** A restored copy about to be downloaded is extended when it expires sooner than this … */
const EXTEND_BELOW_DAYS = 1;
/** … by this many days from now. */
const EXTEND_DAYS = 2;
/** Download window given to a copy requested off schedule. */
const LATE_DOWNLOAD_DAYS = 7;

export interface RestoreRunOptions {
  dataset: string;
  /** Dataset to receive into; must not exist unless `force`. */
  target: string;
  force?: boolean;
  /** Keep going (polling running restores with backoff) until done or the plan needs a future month. */
  wait?: boolean;
  signal?: AbortSignal;
  /** Injectable sleep for `wait` (tests advance a test clock instead). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** First poll delay with `wait` (default 5 s), doubled up to `pollMaxMs` (default 15 min). */
  pollInitialMs?: number;
  pollMaxMs?: number;
  onProgress?: (p: { key: string; downloadedBytes: number; storedSize: number }) => void;
}

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

/** The part of a month's egress allowance other restore jobs of the repository used. */
export interface SharedEgress {
  month: string;
  bytes: number;
  datasets: string[];
}

interface StepOutcome {
  requested: string[];
  downloaded: string[];
  received: string[];
  bytes: number;
  next: NextAction;
  done: boolean;
  snapshot: string;
  sharedEgress: SharedEgress | null;
  damaged: string[];
  blocked: RestoreBlock | null;
}

/** A `zfs receive` of one stream, fed by the downloads of its volumes as they run. */
interface LiveReceive {
  si: number;
  stream: JobStream;
  vols: JobVolume[];
  feed: PlaintextFeed;
  /** Index in `vols` of the volume being fed. */
  next: number;
  /** Parts of `vols[next]` already fed (a re-verification feeds each part once). */
  partsFed: number;
  /** Settles when zfs receive exits (rejects with its error, or the feed's). */
  done: Promise<void>;
}

class RestoreStep {
  private readonly prices: PriceTable;
  private readonly out: StepOutcome;
  private now: Date;
  private live: LiveReceive | null = null;
  /** The repository's other restore jobs (fixed while this step holds the manifest lock): the free egress allowance is per account. */
  private readonly others: RestoreJob[];
  /** A live receive that failed (zfs's error): reported after this run's downloads, like a receive from files. */
  private liveError: unknown = null;
  /** The job's last save by an earlier run (real clock, ms; see mayOverwriteTarget). */
  private readonly savedBeforeThisRun: number | undefined;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly manifest: Manifest,
    private readonly keyring: Keyring,
    /** Opens every part of this run (a worker thread for a ZbkKeyring). */
    private readonly opener: PartOpener,
    private readonly job: RestoreJob,
    private readonly opts: RestoreRunOptions,
  ) {
    this.prices = priceTable(ctx.config.store.region, ctx.config.prices);
    this.now = ctx.now();
    this.out = {
      requested: [], downloaded: [], received: [], bytes: 0, next: { kind: 'poll', at: null, what: '' }, done: false,
      snapshot: job.snapshot.name, sharedEgress: null, damaged: [], blocked: null,
    };
    this.others = listJobs(manifest).filter((j) => j.dataset !== job.dataset);
    this.savedBeforeThisRun = job.savedWallMs;
  }

  private save(): void {
    this.job.savedWallMs = Date.now();
    saveJob(this.manifest, this.job);
  }

  private get target(): string {
    return this.job.target!;
  }

  private path(v: JobVolume): string {
    return stagedPath(this.ctx.config.restore.stagingDir, this.job.dataset, v);
  }

  private streamOf(v: JobVolume): JobStream {
    return this.job.streams[v.streamIndex]!;
  }

  private describe(v: JobVolume): string {
    const s = this.streamOf(v);
    return `object ${v.key} (volume ${v.volumeIndex} of the ${s.kind} stream to @${s.to.name})`;
  }

  private checkAbort(): void {
    if (this.opts.signal?.aborted) throw new AbortError('restore interrupted', { cause: this.opts.signal.reason });
  }

  async run(): Promise<StepOutcome> {
    await this.claimTarget();
    if (this.job.finishedAt) return this.finished();
    await this.syncReceived();
    // What verify (or an earlier run) found damaged is never fetched (see ./damage.ts).
    if (applyKnownDamage(this.manifest, this.job) > 0) this.save();
    if (!this.job.preflightDone) await this.preflight();
    this.reportSharedEgress();
    await this.extendExpiring();
    for (const v of this.job.volumes) {
      if (v.phase === 'received' || isBlocked(this.job, v)) continue;
      this.checkAbort();
      this.now = this.ctx.now();
      try {
        const live = await this.liveFor(v);
        await this.advance(v, live ? this.sinkOf(live, v) : undefined);
        if (live) await this.afterLiveVolume(live, v);
      } catch (err) {
        await this.abortLive(err);
        throw err;
      }
    }
    await this.abortLive(new AbortError('live receive left unfinished'));
    if (this.liveError !== null) throw this.liveError;
    await this.receiveReady();
    this.now = this.ctx.now();
    this.out.next = this.nextAction();
    this.out.done = this.out.next.kind === 'done';
    this.out.blocked = restoreBlock(this.manifest, this.job);
    if (this.out.done && !this.job.finishedAt) {
      this.job.finishedAt = this.now.toISOString();
      // zfs-fuse does not always mount a received dataset by itself.
      await this.ctx.zfs.mount(this.target).catch(async (err: unknown) => this.ctx.log.warn(await mountAdvice(this.ctx.zfs, this.target, err)));
      this.manifest.logEvent('restore-finished', this.job.dataset, { target: this.target, snapshot: this.job.snapshot.name });
    }
    this.job.next = this.out.next;
    this.save();
    return this.out;
  }

  /**
   * A finished restore stays done: snapshots destroyed on the target since
   * (pruning, or the user) are never scheduled, requested or downloaded
   * again. Restoring anew takes a new "zbk restore plan".
   */
  private async finished(): Promise<StepOutcome> {
    const zfs = this.ctx.zfs;
    const has = (await zfs.exists(this.target)) && (await zfs.listSnapshots(this.target)).some((s) => s.guid.toString() === this.job.snapshot.guid);
    if (!has) {
      this.ctx.log.warn(
        `the restore of ${this.job.dataset} finished at ${this.job.finishedAt}, but ${this.target} no longer has @${this.job.snapshot.name}: nothing is fetched again; run "zbk restore plan ${this.job.dataset}" to restore it anew`,
      );
    }
    this.out.next = this.job.next?.kind === 'done' ? this.job.next : { kind: 'done', at: null, what: `restored @${this.job.snapshot.name} into ${this.target}` };
    this.out.done = true;
    return this.out;
  }

  /** Fix the target on the first run; refuse an existing dataset unless --force. */
  private async claimTarget(): Promise<void> {
    const { target, force } = this.opts;
    if (this.job.target !== null) {
      if (this.job.target !== target) {
        throw new UsageError(`the restore of ${this.job.dataset} goes into ${this.job.target} (set by its first run); run "zbk restore plan ${this.job.dataset} --reset" to start over into another target`, 'TARGET_MISMATCH');
      }
      return;
    }
    if (await this.ctx.zfs.exists(target)) {
      if (!force) throw new UsageError(`target ${target} already exists: choose a new dataset, or pass --force to overwrite it`, 'TARGET_EXISTS');
      this.job.force = true;
      this.job.forcedTargetGuid = await this.datasetGuid(target);
    }
    this.job.target = target;
    this.save();
  }

  /**
   * Received streams are what the target's snapshot guids say. A stream
   * counts as received when its own snapshot or that of any later stream of
   * the chain is on the target: a later snapshot can only be there after the
   * earlier streams were received, so a pruned older snapshot (sanoid on the
   * new pool, or the user) is not fetched and received again.
   */
  private async syncReceived(): Promise<void> {
    const zfs = this.ctx.zfs;
    const guids = (await zfs.exists(this.target)) ? new Set((await zfs.listSnapshots(this.target)).map((s) => s.guid.toString())) : new Set<string>();
    const streams = this.job.streams;
    for (const [si, s] of streams.entries()) {
      const has = streams.slice(si).some((x) => guids.has(x.to.guid));
      if (has === s.received) continue;
      s.received = has;
      s.receivedAt = has ? this.now.toISOString() : null;
      for (const v of this.job.volumes.filter((x) => x.streamId === s.streamId)) {
        if (has) {
          v.phase = 'received';
          await this.removeStaged(v);
        } else {
          // The target lost this snapshot and every later one (destroyed or rolled back): fetch the stream again.
          v.phase = 'scheduled';
          this.ctx.log.warn(`${this.target} no longer has @${s.to.name}: its stream will be restored again`);
        }
      }
    }
    this.save();
  }

  /**
   * HEAD every object once before the first request that costs money; a
   * missing object or one of the wrong size is damaged (nothing is spent on
   * a chain that cannot be restored).
   */
  private async preflight(): Promise<void> {
    for (const v of this.job.volumes) {
      if (v.phase === 'received' || v.phase === 'damaged') continue;
      this.checkAbort();
      let info;
      try {
        info = await this.ctx.store.head(v.key);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        this.damaged(v, 'missing from the store', null);
        continue;
      }
      if (info.size !== v.storedSize) this.damaged(v, `is ${info.size} bytes in the store, the manifest says ${v.storedSize}`, info.etag ?? null);
    }
    this.job.preflightDone = true;
    this.save();
  }

  /** `v` is damaged for good (see ./damage.ts): recorded, never fetched again. */
  private damaged(v: JobVolume, problem: string, etagSeen: string | null): void {
    markDamaged(this.manifest, this.job, v, problem, etagSeen, this.ctx.now());
    this.out.damaged.push(v.key);
    this.ctx.log.warn(`${this.describe(v)}: ${problem}: it cannot be restored and is not fetched again`);
    this.save();
  }

  private planMonth(v: JobVolume): RestoreMonth | undefined {
    return this.job.plan.months.find((m) => m.month === v.month);
  }

  /** Verify a staged (or partly staged) file without the network; true when it is whole and authentic. */
  private async verifyOffline(v: JobVolume, path: string, sink?: PlaintextSink): Promise<boolean> {
    try {
      await downloadVolume({
        store: new OfflineStore(),
        keyring: this.keyring,
        volume: recordOf(v),
        streamId: Buffer.from(v.streamId, 'hex'),
        destPath: path,
        sealedSize: sealedPartSize,
        ...this.openOptions(sink),
      });
      return true;
    } catch (err) {
      if (err instanceof NeedsFetchError) return false; // only authenticated parts were fed: the download continues the feed
      if (err instanceof IntegrityError) {
        this.ctx.log.warn(`${err.message}; it will be fetched again`);
        // The whole-volume hash failed after its parts were fed: nothing fed from it may be kept.
        if (sink) await this.abortLive(err);
        return false;
      }
      throw err;
    }
  }

  /**
   * The live receive `v` belongs to: the running one, or a new one when `v`
   * is the first volume of the next stream to receive and the whole stream
   * can be staged in this run. Null: `v` is only staged (received later
   * from the files).
   */
  private async liveFor(v: JobVolume): Promise<LiveReceive | null> {
    const live = this.live;
    if (live) return live.vols[live.next] === v ? live : null;
    const si = v.streamIndex;
    const s = this.streamOf(v);
    if (s.received || v.volumeIndex !== 0 || this.liveError !== null) return null;
    if (!this.job.streams.slice(0, si).every((x) => x.received)) return null;
    const vols = this.job.volumes.filter((x) => x.streamId === s.streamId);
    if (vols[0] !== v || !(await this.wholeStreamNow(vols))) return null;
    const flags = await this.receiveFlags(si);
    // One part queued ahead of zfs (it has work while the next part is opened), three pooled
    // plaintext buffers (queued, being written into zfs's pipe, being opened); see BENCHMARKS.md.
    const feed = new PlaintextFeed({ highWaterMark: Math.max(...vols.map((u) => u.partSize)), poolSize: 3, allocate: (n) => this.opener.allocate(n) });
    this.ctx.log.info(`receiving @${s.to.name} into ${this.target} while its volumes download`);
    const done = this.ctx.zfs.receive(this.target, feed.readable, { ...flags, onWritten: (n) => feed.written(n) }).catch((err: unknown) => {
      throw this.explainReceiveFailure(err, si);
    });
    done.catch(() => undefined); // awaited in finishLive/abortLive
    this.live = { si, stream: s, vols, feed, next: 0, partsFed: 0, done };
    return this.live;
  }

  /**
   * True when, by the same rules `advance` applies (request time, month,
   * allowance, readable copy), every volume of a stream will be downloaded
   * by this run. One HEAD per volume; a wrong guess only costs a killed
   * receive. A stream with volumes staged by an earlier run is received
   * from its files as before (a damaged staged file is quarantined and
   * stops the run, see `quarantine`).
   */
  private async wholeStreamNow(vols: JobVolume[]): Promise<boolean> {
    const metered = !this.unmetered();
    const cur = monthOf(this.now);
    let used = this.egressUsed(cur);
    for (const u of vols) {
      const path = this.path(u);
      if (u.phase === 'staged' || existsSync(path)) return false;
      if (metered) {
        const m = this.planMonth(u);
        if (cur < u.month) return false;
        if (m && this.now.getTime() < Date.parse(m.requestAt)) return false;
        if (u.notBefore && this.now.getTime() < Date.parse(u.notBefore)) return false;
      }
      const state = await this.ctx.store.head(u.key).then(
        (i) => i.restore.state,
        () => null,
      );
      if (state !== 'not-archived' && state !== 'restored') return false;
      if (metered) {
        const partial = await partialSize(path);
        const rest = u.storedSize - partial;
        if (used !== 0 && used + rest > this.monthCap()) return false;
        used += rest;
      }
    }
    return true;
  }

  /** How downloadVolume opens parts: with this run's opener, into the live receive's buffer pool when fed to it. */
  private openOptions(sink?: PlaintextSink): Pick<DownloadVolumeOptions, 'opener' | 'onPlaintext' | 'plaintextBuffers'> {
    if (!sink) return { opener: this.opener };
    return { opener: this.opener, onPlaintext: sink, ...(this.live ? { plaintextBuffers: this.live.feed } : {}) };
  }

  /** Feeds `v`'s parts to the live receive, each part once, in order. */
  private sinkOf(live: LiveReceive, v: JobVolume): PlaintextSink {
    return async (partIndex, chunks) => {
      if (live.vols[live.next] !== v) throw new IntegrityError(`live receive of @${live.stream.to.name}: got ${v.key} out of order`);
      if (partIndex < live.partsFed) {
        for (const c of chunks) live.feed.release(c);
        return; // fed by an earlier pass over the same verified bytes
      }
      if (partIndex > live.partsFed) throw new IntegrityError(`live receive of @${live.stream.to.name}: part ${partIndex + 1} of ${v.key} came before part ${live.partsFed + 1}`);
      live.partsFed++;
      await live.feed.write(chunks);
    };
  }

  /** After `advance(v)`: on to the next volume, finish the receive after the last, or give up when `v` is not staged. */
  private async afterLiveVolume(live: LiveReceive, v: JobVolume): Promise<void> {
    if (this.live !== live) return; // aborted meanwhile
    if (v.phase !== 'staged' || live.partsFed !== v.partCount) {
      await this.abortLive(new AbortError(`${v.key} was not staged in this run`));
      return;
    }
    live.next++;
    live.partsFed = 0;
    if (live.next < live.vols.length) return;
    this.live = null;
    live.feed.end();
    try {
      await live.done;
    } catch (err) {
      // zfs's own failure (everything fed had authenticated): the staged files stay for the next run.
      this.liveError = err;
      return;
    }
    await this.finishReceive(live.stream, live.vols);
  }

  /**
   * Kill the live receive and wait for it. Safe because downloadVolume hands
   * a volume's last part (which carries the stream's END record on the last
   * volume) to the receive only after the whole-volume hash matched: zfs has
   * not seen the end of the stream, so it keeps nothing.
   */
  private async abortLive(cause: unknown): Promise<void> {
    const live = this.live;
    if (!live) return;
    this.live = null;
    live.feed.fail(cause instanceof Error ? cause : new AbortError(String(cause)));
    await live.done.catch(() => undefined);
  }

  private async advance(v: JobVolume, sink?: PlaintextSink): Promise<void> {
    const path = this.path(v);
    if (v.phase === 'staged' && existsSync(path) && !sink) return;
    if (existsSync(path) || existsSync(`${path}.partial`)) {
      if (await this.verifyOffline(v, path, sink)) {
        v.phase = 'staged';
        this.save();
        return;
      }
      v.phase = 'downloading';
    } else if (v.phase === 'staged' || v.phase === 'downloading') {
      v.phase = 'scheduled'; // the staged file vanished
    }
    const asap = this.unmetered();
    const month = this.planMonth(v);
    if (!asap && ((month && this.now.getTime() < Date.parse(month.requestAt)) || (v.notBefore && this.now.getTime() < Date.parse(v.notBefore)))) {
      if (v.phase !== 'downloading') v.phase = 'scheduled';
      return;
    }
    let info;
    try {
      info = await this.ctx.store.head(v.key);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      this.damaged(v, 'missing from the store', null);
      return;
    }
    let readable: boolean;
    switch (info.restore.state) {
      case 'not-archived':
        readable = true;
        break;
      case 'restored':
        v.restoreExpiry = info.restore.expiry.toISOString();
        readable = (await this.mayDownload(v, path)) ? await this.keepCopy(v, info.restore.expiry) : true;
        break;
      case 'in-progress':
        v.phase = 'restoring'; // a partial download stays on disk and is resumed
        this.save();
        return;
      case 'archived': {
        // Every thaw is checked against the month's cap, also one on its plan's schedule: each
        // plan was made as if it had the allowance to itself.
        if (!asap && !(await this.mayRequest(v, path))) {
          // The allowance of the month its copy would be
          // downloaded in is used up: a copy thawed now would expire unused, so
          // ask again just before the month after that one.
          const lead = LEAD_DAYS[this.job.options.tier];
          const d = addDays(this.now, lead);
          v.notBefore = addDays(new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)), -lead).toISOString();
          if (v.phase !== 'downloading') v.phase = 'scheduled';
          this.save();
          return;
        }
        readable = await this.requestRestore(v);
        break;
      }
    }
    if (!readable) return;
    if (!(await this.mayDownload(v, path))) {
      if (v.phase !== 'downloading') v.phase = 'ready';
      this.save();
      return;
    }
    await this.download(v, path, sink);
  }

  /** `Days` for a request now: the plan's, or longer when off schedule, so the copy outlives its download. */
  private restoreDays(v: JobVolume): number {
    const m = this.planMonth(v);
    const planned = m?.restoreDays ?? 1;
    const downloadBy = m ? Date.parse(m.downloadBy) : 0;
    const onSchedule = m !== undefined && this.now.getTime() <= Date.parse(m.requestAt) + DAY_MS;
    if (onSchedule) return planned;
    const lateBy = addDays(this.now, LEAD_DAYS[this.job.options.tier] + LATE_DOWNLOAD_DAYS).getTime();
    return Math.max(1, Math.ceil((Math.max(downloadBy, lateBy) - this.now.getTime()) / DAY_MS) + 1);
  }

  private spend(bytes: number, days: number, objects: number, retrieval: boolean): void {
    const c = restoreCost({ bytes, objects, tier: this.job.options.tier, days, freeEgressGB: Number.MAX_SAFE_INTEGER }, this.prices);
    const m = monthOf(this.now);
    const s = (this.job.spentByMonth[m] ??= { retrieval: 0, requests: 0, tempStorage: 0 });
    if (retrieval) s.retrieval += c.retrieval;
    s.requests += c.requests;
    s.tempStorage += c.tempStorage;
  }

  /**
   * Before any download, extend every restored copy this run may download
   * that is about to expire (keepCopy): the downloads of the volumes before
   * it may outlast it.
   */
  private async extendExpiring(): Promise<void> {
    // In chain order, as the run downloads them: only what this month's cap lets through is kept.
    let committed = 0;
    for (const v of this.job.volumes) {
      if (v.phase !== 'restoring' && v.phase !== 'ready' && v.phase !== 'downloading') continue;
      if (v.lastError !== null) continue; // a run stopped by it would extend the copy again and again
      if (isBlocked(this.job, v)) continue; // behind a damaged stream: never downloaded
      const path = this.path(v);
      if (!(await this.mayDownload(v, path, committed))) continue;
      const partial = await partialSize(path);
      committed += Math.max(0, v.storedSize - partial);
      // A copy last seen with days to live needs no HEAD here (advance HEADs it anyway).
      if (v.restoreExpiry !== null && Date.parse(v.restoreExpiry) - this.now.getTime() >= EXTEND_BELOW_DAYS * DAY_MS) continue;
      const info = await this.ctx.store.head(v.key).catch(() => null);
      if (info?.restore.state !== 'restored') continue;
      v.restoreExpiry = info.restore.expiry.toISOString();
      await this.keepCopy(v, info.restore.expiry);
    }
  }

  /** Record a thaw that started now. */
  private thawStarted(v: JobVolume, days: number): void {
    const tier = this.job.options.tier;
    v.requestedAt = this.now.toISOString();
    v.restoreRequests++;
    v.restoreExpiry = null;
    v.phase = 'restoring'; // a partial download stays on disk and is resumed
    this.spend(v.storedSize, days, 1, true);
    this.out.requested.push(v.key);
    this.manifest.logEvent('restore-requested', this.job.dataset, { key: v.key, days, tier });
    this.ctx.log.info(`requested a ${tier} restore of ${v.key} for ${days} day(s)`);
    this.save();
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
  private async keepCopy(v: JobVolume, expiry: Date): Promise<boolean> {
    if (expiry.getTime() - this.now.getTime() >= EXTEND_BELOW_DAYS * DAY_MS) return true;
    const outcome = await this.ctx.store.requestRestore(v.key, EXTEND_DAYS, this.job.options.tier);
    switch (outcome) {
      case 'already-restored':
        v.restoreRequests++;
        v.restoreExpiry = addDays(this.now, EXTEND_DAYS).toISOString();
        this.spend(v.storedSize, EXTEND_DAYS, 1, false);
        this.manifest.logEvent('restore-extended', this.job.dataset, { key: v.key, days: EXTEND_DAYS });
        this.ctx.log.info(`extended the restored copy of ${v.key}, which expired at ${expiry.toISOString()}, by ${EXTEND_DAYS} day(s) for its download`);
        this.save();
        return true;
      case 'started':
        // It expired between HEAD and the request: a new thaw, of EXTEND_DAYS (it is due for download now).
        v.expiredCopies++;
        this.manifest.logEvent('restore-expired', this.job.dataset, { key: v.key, requestedAt: v.requestedAt, expiry: v.restoreExpiry });
        this.thawStarted(v, EXTEND_DAYS);
        return false;
      case 'in-progress':
        v.phase = 'restoring';
        this.save();
        return false;
      case 'not-archived':
        return true;
    }
  }

  /** The object is archived with no copy: ask for one. True when it is readable right away. */
  private async requestRestore(v: JobVolume): Promise<boolean> {
    if (v.requestedAt !== null) {
      // HEAD says archived although we asked before: the copy expired before its download finished.
      v.expiredCopies++;
      this.ctx.log.warn(`the restored copy of ${this.describe(v)} expired before its download finished: requesting it again`);
      this.manifest.logEvent('restore-expired', this.job.dataset, { key: v.key, requestedAt: v.requestedAt, expiry: v.restoreExpiry });
    }
    const days = this.restoreDays(v);
    const tier = this.job.options.tier;
    const outcome = await this.ctx.store.requestRestore(v.key, days, tier);
    switch (outcome) {
      case 'started':
        this.thawStarted(v, days);
        return false;
      case 'already-restored':
        v.restoreRequests++;
        v.requestedAt ??= this.now.toISOString();
        this.spend(v.storedSize, days, 1, false);
        this.save();
        return true;
      case 'in-progress':
        v.requestedAt ??= this.now.toISOString();
        v.phase = 'restoring'; // a partial download stays on disk and is resumed
        this.save();
        return false;
      case 'not-archived':
        return true;
    }
  }

  /**
   * Everything at once: the `asap` mode, or a local-directory store (no
   * thaw, no egress, so the month schedule protects nothing).
   */
  private unmetered(): boolean {
    return this.job.options.mode === 'asap' || isLocalStore(this.ctx.store);
  }

  /** Stored bytes the other restore jobs downloaded in `month`. */
  private othersEgress(month: string): number {
    return this.others.reduce((a, j) => a + (j.egressByMonth[month] ?? 0), 0);
  }

  /** Stored bytes downloaded in `month` by every restore of this repository (the allowance is per account, not per job). */
  private egressUsed(month: string): number {
    return (this.job.egressByMonth[month] ?? 0) + this.othersEgress(month);
  }

  /** Say when other restores already used part of this month's allowance (free mode only: the others are what limits it). */
  private reportSharedEgress(): void {
    if (this.unmetered() || this.job.options.mode !== 'free') return;
    const month = monthOf(this.now);
    const bytes = this.othersEgress(month);
    if (bytes === 0) return;
    const datasets = this.others.filter((j) => (j.egressByMonth[month] ?? 0) > 0).map((j) => j.dataset);
    this.out.sharedEgress = { month, bytes, datasets };
    this.ctx.log.info(
      `the restore(s) of ${datasets.join(', ')} already downloaded ${(bytes / BYTES_PER_GB).toFixed(3)} GB in ${month}: the egress allowance is per account, so this restore gets only the rest`,
    );
  }

  /**
   * Stored bytes all restores of the repository may download in one month:
   * the usable free allowance, or in budget mode the plan's heaviest month
   * (its schedule pays for that much egress), so a month that slipped does
   * not put two months' downloads, and their egress, into one.
   */
  private monthCap(): number {
    const usable = this.job.plan.monthlyCapacityGB * BYTES_PER_GB;
    if (this.job.options.mode !== 'budget') return usable;
    return Math.max(usable, ...this.job.plan.months.map((m) => m.bytes));
  }

  /**
   * Calendar month and the cap of `month` (default: this one; monthCap)
   * permit downloading `v` then, with `committed` more bytes of it already
   * promised.
   */
  private async mayDownload(v: JobVolume, path: string, committed = 0, month = monthOf(this.now)): Promise<boolean> {
    if (this.unmetered()) return true;
    if (month < v.month) return false;
    const used = this.egressUsed(month) + committed;
    // An oversized volume alone in its month (the plan warned), also after part of it was fetched.
    if (used - (v.downloadedByMonth?.[month] ?? 0) <= 0) return true;
    const partial = await partialSize(path);
    return used + (v.storedSize - partial) <= this.monthCap();
  }

  /**
   * Like mayDownload, before a thaw: copies already thawed or
   * thawing and not yet downloaded, this restore's and the other restores'
   * of the repository, count as spent too. Otherwise two restores at once
   * would each thaw a month's worth, and the copies the allowance cannot
   * take before they expire would be thawed (and paid for) again.
   */
  private async mayRequest(v: JobVolume, path: string): Promise<boolean> {
    if (this.unmetered()) return this.mayDownload(v, path);
    // The allowance that pays for it is that of the month its copy can first be downloaded in:
    // a request in the last days of a month is downloaded in the next one.
    const downloadMonth = monthOf(addDays(this.now, LEAD_DAYS[this.job.options.tier]));
    return this.mayDownload(v, path, await this.waitingBytes(v, downloadMonth), downloadMonth);
  }

  /**
   * Stored bytes still to download of copies that are thawing, or thawed and
   * not expired, planned for `month` or earlier, in every unfinished restore of
   * the repository (`v` itself excluded). A request older than
   * WAITING_REQUEST_DAYS with no copy seen since belongs to an abandoned run
   * and is not counted, so it cannot block thaws for ever.
   */
  private async waitingBytes(v: JobVolume, month: string): Promise<number> {
    const now = this.now.getTime();
    let total = 0;
    for (const j of [this.job, ...this.others.filter((o) => !o.finishedAt)]) {
      for (const u of j.volumes) {
        if (u === v || u.month > month) continue;
        const expiry = u.restoreExpiry ? Date.parse(u.restoreExpiry) : null;
        const requested = u.requestedAt ? Date.parse(u.requestedAt) : null;
        const thawing = u.phase === 'restoring' && requested !== null && now - requested <= WAITING_REQUEST_DAYS * DAY_MS;
        const thawed = (u.phase === 'ready' || u.phase === 'downloading') && expiry !== null && expiry > now;
        if (!thawing && !thawed) continue;
        const partial = await partialSize(stagedPath(this.ctx.config.restore.stagingDir, j.dataset, u));
        total += Math.max(0, u.storedSize - partial);
      }
    }
    return total;
  }

  private async download(v: JobVolume, path: string, sink?: PlaintextSink): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    v.phase = 'downloading';
    this.save();
    let seen = 0;
    try {
      await downloadVolume({
        store: this.ctx.store,
        keyring: this.keyring,
        volume: recordOf(v),
        streamId: Buffer.from(v.streamId, 'hex'),
        destPath: path,
        sealedSize: sealedPartSize,
        ...(this.opts.signal ? { signal: this.opts.signal } : {}),
        ...this.openOptions(sink),
        onProgress: (p) => {
          const delta = p.downloadedBytes - seen;
          seen = p.downloadedBytes;
          const m = monthOf(this.ctx.now());
          this.job.egressByMonth[m] = (this.job.egressByMonth[m] ?? 0) + delta;
          v.downloadedBytes += delta;
          (v.downloadedByMonth ??= {})[m] = (v.downloadedByMonth[m] ?? 0) + delta;
          this.out.bytes += delta;
          this.save();
          this.opts.onProgress?.({ key: v.key, downloadedBytes: p.reusedBytes + p.downloadedBytes, storedSize: v.storedSize });
        },
      });
    } catch (err) {
      if (err instanceof ArchivedError) {
        // The copy expired between HEAD and GET: ask again; the verified prefix stays on disk.
        await this.requestRestore(v);
        return;
      }
      if (err instanceof RestoreInProgressError) return;
      if (isStoredDamage(err)) {
        // The store returns these bytes every time: fetching them again on every run only costs egress.
        this.manifest.logEvent('restore-integrity', this.job.dataset, { key: v.key, message: err.message });
        // The ETag of the bytes that failed: a good copy put back has another one, and verify then clears the record.
        this.damaged(v, err.message, await this.etagNow(v.key));
        return;
      }
      if (err instanceof IntegrityError) {
        v.lastError = err.message;
        this.save();
        this.manifest.logEvent('restore-integrity', this.job.dataset, { key: v.key, message: err.message });
        throw new IntegrityError(`${this.describe(v)} failed verification: ${err.message}`, err.code, { cause: err });
      }
      throw err;
    }
    v.phase = 'staged';
    v.lastError = null;
    this.out.downloaded.push(v.key);
    // It authenticated: an ETag or storage-class mismatch recorded for it was not damage.
    if (clearMismatch(this.manifest, this.job.dataset, v.key)) this.ctx.log.info(`${this.describe(v)} authenticated: the ETag/storage-class mismatch recorded for it is cleared`);
    this.save();
  }

  /** The ETag the store reports for `key` now, or null (none, or HEAD failed: the damage is recorded either way). */
  private async etagNow(key: string): Promise<string | null> {
    try {
      return (await this.ctx.store.head(key)).etag ?? null;
    } catch {
      return null;
    }
  }

  /** Receive every stream, in chain order, whose volumes are all staged. */
  private async receiveReady(): Promise<void> {
    const zfs = this.ctx.zfs;
    for (let si = 0; si < this.job.streams.length; si++) {
      const s = this.job.streams[si]!;
      if (s.received) continue;
      const vols = this.job.volumes.filter((v) => v.streamId === s.streamId);
      if (!vols.every((v) => v.phase === 'staged')) return;
      this.checkAbort();
      const flags = await this.receiveFlags(si);
      const input = openVolumeFiles({
        keyring: this.keyring,
        opener: this.opener,
        streamId: Buffer.from(s.streamId, 'hex'),
        volumes: vols.map((v) => ({ record: recordOf(v), path: this.path(v) })),
        sealedSize: sealedPartSize,
      });
      this.ctx.log.info(`receiving @${s.to.name} into ${this.target}`);
      try {
        await zfs.receive(this.target, input, flags);
      } catch (err) {
        if (err instanceof IntegrityError) await this.quarantine(s, vols, err);
        throw this.explainReceiveFailure(err, si);
      }
      await this.finishReceive(s, vols);
    }
  }

  /**
   * zfs's refusal of an incremental because the target changed since the last
   * receive (mounted and read, or written) as a clear error; others as they are.
   */
  private explainReceiveFailure(err: unknown, si: number): unknown {
    if (si === 0 || !(err instanceof ZfsError) || !/modified\s+since most recent snapshot/i.test(err.stderrTail)) return err;
    return new UsageError(
      `${this.target} was changed since its last receive (mounted and read, or written): unmount it and leave it alone until the restore is done (it is mounted at the end), or pass --force to roll those changes back`,
      'TARGET_MODIFIED',
    );
  }

  /** The `guid` property of `dataset` (null when zfs does not report one). */
  private async datasetGuid(dataset: string): Promise<string | null> {
    const g = (await this.ctx.zfs.getProperties(dataset, ['guid'])).get('guid');
    return g && g !== '-' ? g : null;
  }

  /**
   * Without --force in this run, the full receive may overwrite an existing
   * target only when it is what an earlier run was allowed to overwrite:
   * the very dataset --force was given for (same guid), or what our own
   * interrupted full receive left behind (no snapshots, created after that
   * receive started and before the interrupted run's last save, which it
   * makes while it feeds the receive; zfs-fuse discards such a leftover only
   * after a while, so it is first given 15 s to go). Anything else put there since (the
   * user's own dataset at that name) is refused, never rolled over.
   */
  private async mayOverwriteTarget(): Promise<boolean> {
    const zfs = this.ctx.zfs;
    if (this.job.force) {
      const want = this.job.forcedTargetGuid;
      if (want === undefined || (want !== null && want === (await this.datasetGuid(this.target)))) return true;
    }
    const started = this.job.fullReceiveStartedAt;
    if (started === null) return false;
    for (let i = 0; i < 75 && (await zfs.exists(this.target)); i++) await new Promise((r) => setTimeout(r, 200));
    if (!(await zfs.exists(this.target))) return true;
    if ((await zfs.listSnapshots(this.target)).length > 0) return false;
    const wall = this.job.fullReceiveStartedWallMs;
    if (wall === undefined) return true; // a job saved before the time was recorded
    const creation = Number((await zfs.getProperties(this.target, ['creation'])).get('creation'));
    if (!Number.isFinite(creation) || creation * 1000 < wall - 2000) return false;
    // zfs's creation time has one-second resolution; the dataset appears once the stream's first record is read.
    const lastSave = this.savedBeforeThisRun;
    return lastSave === undefined || creation * 1000 <= lastSave + 5000;
  }

  /**
   * `zfs receive` flags for stream `si`; before a full receive, records that it
   * started. Every receive leaves the target unmounted (`-u`), so nothing
   * changes it between two runs (it is mounted when the restore is done).
   */
  private async receiveFlags(si: number): Promise<{ force: boolean; unmounted: true }> {
    const stream = this.job.streams[si];
    if (stream) {
      const note = receiveRestartNote(stream, this.target);
      if (note) this.ctx.log.info(note);
      markReceiveStarted(stream, this.ctx.now());
    }
    if (si !== 0) {
      // Incrementals roll the target back (-F) only with --force: whatever changed it since
      // the last receive is then lost, and OpenZFS also destroys its snapshots newer than the
      // base, so snapshots somebody else took there (sanoid on the new pool) are refused first.
      const chain = new Set(this.job.streams.map((x) => x.to.guid));
      const snaps = await this.ctx.zfs.listSnapshots(this.target);
      const ours = snaps.filter((x) => chain.has(x.guid.toString()));
      const newest = ours.reduce((m, x) => (x.createtxg > m ? x.createtxg : m), -1n);
      const foreign = snaps.filter((x) => !chain.has(x.guid.toString()) && x.createtxg > newest);
      if (foreign.length > 0 && !this.opts.force) {
        const names = foreign.map((x) => `@${x.shortName}`).join(', ');
        throw new UsageError(
          `${this.target} has snapshots this restore did not receive (${names}); its next incremental receive (zfs receive -F) would destroy them: destroy or move them yourself and disable snapshotting of the target until the restore is done, or pass --force`,
          'TARGET_CHANGED',
        );
      }
      return { force: this.opts.force === true, unmounted: true };
    }
    const exists = await this.ctx.zfs.exists(this.target);
    const force = exists && (this.opts.force === true || (await this.mayOverwriteTarget()));
    if (exists && !force) throw new UsageError(`target ${this.target} already exists and is not what this restore may overwrite: pass --force to overwrite it`, 'TARGET_EXISTS');
    // A full receive -F replaces the target whole: unmount it first. zfs-fuse
    // failed such a receive over a mounted target now and then with "I/O error".
    if (force) await this.ctx.zfs.unmount(this.target).catch(() => undefined);
    if (this.job.fullReceiveStartedAt === null) {
      this.job.fullReceiveStartedAt = this.ctx.now().toISOString();
      this.job.fullReceiveStartedWallMs = Date.now();
    }
    this.save();
    return { force, unmounted: true };
  }

  /** After `zfs receive` of `s` succeeded: check the snapshot, record it, delete the staged files. */
  private async finishReceive(s: JobStream, vols: JobVolume[]): Promise<void> {
    const got = await this.ctx.zfs.getSnapshot(`${this.target}@${s.to.name}`);
    if (got.guid.toString() !== s.to.guid) {
      throw new IntegrityError(`${this.target}@${s.to.name} has guid ${got.guid}, the pushed snapshot ${s.to.guid}`, 'RECEIVE_MISMATCH');
    }
    s.received = true;
    s.receivedAt = this.ctx.now().toISOString();
    for (const v of vols) {
      v.phase = 'received';
      clearMismatch(this.manifest, this.job.dataset, v.key); // authenticated and received: not damage
    }
    this.out.received.push(s.to.name);
    this.save();
    this.manifest.logEvent('restore-received', this.job.dataset, { target: this.target, snapshot: s.to.name, streamId: s.streamId });
    for (const v of vols) await this.removeStaged(v);
    await rmdir(dirname(this.path(vols[0]!))).catch(() => undefined);
  }

  /**
   * Drop a received volume's staged copy, and its `.partial` too: a live
   * receive commits at the stream's END record, before the download renames
   * `.partial` into place, so a kill in between leaves only the `.partial`.
   * (`.bad` copies stay: they are the evidence of an integrity failure.)
   */
  private async removeStaged(v: JobVolume): Promise<void> {
    await rm(this.path(v), { force: true });
    await rm(`${this.path(v)}.partial`, { force: true });
  }

  /**
   * A staged file failed authentication during receive (zfs saw none of the
   * bad bytes: the receive was killed). Find which: each file is copied
   * aside, then verified in place (a bad part is fetched again on its own
   * when whole parts follow it, else the file is truncated there and the
   * rest fetched); copies of files that verify are dropped,
   * copies of bad ones are kept as `.bad`.
   */
  private async quarantine(s: JobStream, vols: JobVolume[], cause: IntegrityError): Promise<never> {
    const bad: string[] = [];
    for (const v of vols) {
      const path = this.path(v);
      const copy = `${path}.suspect`;
      await copyFile(path, copy);
      if (await this.verifyOffline(v, path)) {
        await rm(copy, { force: true });
        continue;
      }
      await rename(copy, `${path}.bad`);
      v.phase = 'downloading';
      v.lastError = `staged file failed authentication; kept as ${path}.bad`;
      bad.push(`${v.key} (kept as ${path}.bad)`);
      this.manifest.logEvent('restore-integrity', this.job.dataset, { key: v.key, staged: true });
    }
    this.save();
    if (bad.length === 0) throw cause;
    throw new IntegrityError(
      `staged data of @${s.to.name} failed authentication before zfs receive used it: ${bad.join(', ')}; the next "zbk restore run" fetches the damaged part again`,
      'STAGED_CORRUPT',
      { cause },
    );
  }

  private nextAction(): NextAction {
    if (this.job.streams.every((s) => s.received)) return { kind: 'done', at: null, what: `restored @${this.job.snapshot.name} into ${this.target}` };
    const block = restoreBlock(this.manifest, this.job);
    const pending = this.job.volumes.filter((v) => v.phase !== 'received' && v.phase !== 'staged' && !isBlocked(this.job, v));
    if (block && pending.length === 0) return blockedAction(block);
    const next = this.pendingAction(pending);
    return block ? { ...next, what: `${next.what}, for the snapshots before the damage; then ${block.remedy}` } : next;
  }

  /** The next step for the `pending` volumes. */
  private pendingAction(pending: JobVolume[]): NextAction {
    const restoring = pending.filter((v) => v.phase === 'restoring');
    if (restoring.length > 0) return { kind: 'poll', at: null, what: `wait for ${restoring.length} restore(s) to complete, then download` };
    const times: { at: number; what: string }[] = [];
    for (const v of pending) {
      if (v.phase === 'scheduled' || (v.phase === 'downloading' && v.notBefore && Date.parse(v.notBefore) > this.now.getTime())) {
        const m = this.planMonth(v);
        const at = Math.max(m ? Date.parse(m.requestAt) : 0, v.notBefore ? Date.parse(v.notBefore) : 0);
        times.push({ at, what: `request the restore of ${v.key}` });
      } else if (v.phase === 'ready' || v.phase === 'downloading') {
        const d = this.now;
        const cur = monthOf(d);
        const nextMonth = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
        const at = cur < v.month ? Date.parse(`${v.month}-01T00:00:00Z`) : nextMonth;
        const expiry = v.restoreExpiry ? Date.parse(v.restoreExpiry) : Number.POSITIVE_INFINITY;
        const lead = LEAD_DAYS[this.job.options.tier] * DAY_MS;
        if (expiry >= at) times.push({ at, what: `download within the ${monthOf(new Date(at))} egress allowance` });
        // The copy expires before then: thaw it again in time for that month (as soon as it is gone).
        else times.push({ at: Math.max(at - lead, expiry + 60_000), what: `request the restore of ${v.key} again for the ${monthOf(new Date(at))} egress allowance` });
      }
    }
    times.sort((a, b) => a.at - b.at);
    const first = times[0];
    if (!first || first.at <= this.now.getTime()) return { kind: 'poll', at: null, what: 'run again' };
    return { kind: 'wait-until', at: new Date(first.at).toISOString(), what: first.what };
  }
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

/** Bytes of a volume's unfinished download staged at `path` (0 when none). */
function partialSize(path: string): Promise<number> {
  return stat(`${path}.partial`).then(
    (st) => st.size,
    () => 0,
  );
}

/** A thaw request counts as waiting (see waitingBytes) for at most this long without a copy seen. */
const WAITING_REQUEST_DAYS = 14;

/** One step of the state machine under the manifest lock. */
async function step(ctx: ServiceContext, opts: RestoreRunOptions, openers: OpenerCache): Promise<StepOutcome> {
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
    return await new RestoreStep(ctx, manifest, keyring, await openers.for(keyring), job, opts).run();
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
      const o = await step(ctx, opts, openers);
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
