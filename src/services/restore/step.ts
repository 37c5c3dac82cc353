/**
 * What one step of `zbk restore run` shares between its parts (./thaw.ts,
 * ./staging.ts, ./receive.ts, ./live-receive.ts, …): the job being advanced
 * under the manifest lock, the clock its decisions read, the outcome being
 * collected and the live receive in flight. One object, so that every part
 * sees the same `now`, the same job and the same other jobs, and saves the
 * job the same way.
 */
import { configPriceTable } from '../../cost/providers/index.js';
import type { Keyring } from '../../crypto/types.js';
import { type PriceTable } from '../../cost/prices.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { PlaintextFeed } from '../../pipeline/download.js';
import { AbortError } from '../../pipeline/errors.js';
import { NotFoundError } from '../../store/errors.js';
import type { ObjectInfo } from '../../store/object-store.js';
import type { PartOpener } from '../../pipeline/part-opener.js';
import type { RestoreMonth } from '../../planner/restore-plan.js';
import type { ServiceContext } from '../context.js';
import { markDamaged, type RestoreBlock } from './damage.js';
import type { SharedEgress } from './egress.js';
import { listJobs, saveJob, stagedPath, type JobStream, type JobVolume, type NextAction, type RestoreJob } from './job.js';

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
  onProgress?: (p: RestoreProgress) => void;
  /** A volume's download begins (before its first GET; what is verified on disk is reused) or ends (staged and verified). */
  onVolume?: (e: RestoreVolumeEvent) => void;
}

/** Which volume a download report is about. */
export interface RestoreVolumeEvent {
  event: 'start' | 'end';
  key: string;
  /** The snapshot the volume's stream ends at. */
  snapshot: string;
  volumeIndex: number;
  storedSize: number;
}

/** A volume's download after a part was counted. */
export interface RestoreProgress {
  key: string;
  /** Stored bytes of the volume done: verified on disk (`reusedBytes`) plus fetched by this download. */
  downloadedBytes: number;
  storedSize: number;
  /** Of `downloadedBytes`, those verified on disk from an earlier run (not fetched). */
  reusedBytes?: number;
  snapshot?: string;
  volumeIndex?: number;
  /** The part just counted (1-based), of `partCount`. */
  partNumber?: number;
  partCount?: number;
}

/** What one step did and what comes next (summed over the steps of a `--wait` run by ./run.ts). */
export interface StepOutcome {
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

/** A `zfs receive` of one stream, fed by the downloads of its volumes as they run (see ./live-receive.ts). */
export interface LiveReceive {
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

export class RestoreStep {
  readonly prices: PriceTable;
  readonly out: StepOutcome;
  /** The clock the decisions read: taken again before each volume (see ./run.ts). */
  now: Date;
  live: LiveReceive | null = null;
  /** The repository's other restore jobs (fixed while this step holds the manifest lock): the free egress allowance is per account. */
  readonly others: RestoreJob[];
  /** A live receive that failed (zfs's error): reported after this run's downloads, like a receive from files. */
  liveError: unknown = null;
  /** The job's last save by an earlier run (real clock, ms; see mayOverwriteTarget in ./target.ts). */
  readonly savedBeforeThisRun: number | undefined;

  constructor(
    readonly ctx: ServiceContext,
    readonly manifest: Manifest,
    readonly keyring: Keyring,
    /** Opens every part of this run (a worker thread for a ZbkKeyring). */
    readonly opener: PartOpener,
    readonly job: RestoreJob,
    readonly opts: RestoreRunOptions,
  ) {
    this.prices = configPriceTable(ctx.config.store, ctx.config.prices);
    this.now = ctx.now();
    this.out = {
      requested: [], downloaded: [], received: [], bytes: 0, next: { kind: 'poll', at: null, what: '' }, done: false,
      snapshot: job.snapshot.name, sharedEgress: null, damaged: [], blocked: null,
    };
    this.others = listJobs(manifest).filter((j) => j.dataset !== job.dataset);
    this.savedBeforeThisRun = job.savedWallMs;
  }

  save(): void {
    this.job.savedWallMs = Date.now();
    saveJob(this.manifest, this.job);
  }

  get target(): string {
    return this.job.target!;
  }

  path(v: JobVolume): string {
    return stagedPath(this.ctx.config.restore.stagingDir, this.job.dataset, v);
  }

  streamOf(v: JobVolume): JobStream {
    return this.job.streams[v.streamIndex]!;
  }

  describe(v: JobVolume): string {
    const s = this.streamOf(v);
    return `object ${v.key} (volume ${v.volumeIndex} of the ${s.kind} stream to @${s.to.name})`;
  }

  checkAbort(): void {
    if (this.opts.signal?.aborted) throw new AbortError('restore interrupted', { cause: this.opts.signal.reason });
  }

  planMonth(v: JobVolume): RestoreMonth | undefined {
    return this.job.plan.months.find((m) => m.month === v.month);
  }

  /** `v` is damaged for good (see ./damage.ts): recorded, never fetched again. */
  damaged(v: JobVolume, problem: string, etagSeen: string | null): void {
    markDamaged(this.manifest, this.job, v, problem, etagSeen, this.ctx.now());
    this.out.damaged.push(v.key);
    this.ctx.log.warn(`${this.describe(v)}: ${problem}: it cannot be restored and is not fetched again`);
    this.save();
  }

  /** HEAD `v`'s object; a missing one is damaged for good (recorded) and null is returned. */
  async headOrDamaged(v: JobVolume): Promise<ObjectInfo | null> {
    try {
      return await this.ctx.store.head(v.key);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      this.damaged(v, 'missing from the store', null);
      return null;
    }
  }

  /**
   * Kill the live receive and wait for it. Safe because downloadVolume hands
   * a volume's last part (which carries the stream's END record on the last
   * volume) to the receive only after the whole-volume hash matched: zfs has
   * not seen the end of the stream, so it keeps nothing.
   */
  async abortLive(cause: unknown): Promise<void> {
    const live = this.live;
    if (!live) return;
    this.live = null;
    live.feed.fail(cause instanceof Error ? cause : new AbortError(String(cause)));
    await live.done.catch(() => undefined);
  }
}
