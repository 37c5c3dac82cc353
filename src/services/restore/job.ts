/**
 * The persisted state of one dataset's restore ("job"): the saved plan and,
 * per volume, what has been requested, downloaded, verified and received.
 *
 * It lives in the manifest's key/value table (one JSON value per dataset,
 * written in a transaction after every step), so a process killed at any
 * moment loses at most the step it was in, and `restore status` can read it
 * without touching the store.
 */
import { join } from 'node:path';
import { volumeRecordOf } from '../../manifest/records.js';
import { IntegrityError, ManifestError } from '../../errors.js';
import type { VolumeRecord } from '../../layout.js';
import type { Manifest } from '../../manifest/manifest.js';
import type { StreamWithVolumes } from '../../manifest/types.js';
import type { RestorePlan, RestorePlanOptions, RestoreVolume } from '../../planner/restore-plan.js';

/** Where a volume is in its life cycle, as `restore status` shows it. */
export type VolumePhase =
  /** Its month's restore request time has not come yet. */
  | 'scheduled'
  /** A restore was requested and is running. */
  | 'restoring'
  /** Readable in the store (restored copy or not archived), not yet downloaded. */
  | 'ready'
  /** Part of it is on disk (an interrupted download). */
  | 'downloading'
  /** Verified on disk, waiting for the rest of its stream. */
  | 'staged'
  /** Its stream has been received into the target. */
  | 'received'
  /**
   * Terminal: the object is missing, or its bytes from the store failed
   * authentication (recorded in the manifest's damage table). Never requested
   * or fetched again; its stream and the later ones cannot be received.
   */
  | 'damaged';

export interface JobVolume {
  key: string;
  streamId: string;
  /** Position of the stream in the chain (0 = full). */
  streamIndex: number;
  volumeIndex: number;
  storedSize: number;
  plaintextSize: number;
  plaintextSha256: string;
  partCount: number;
  partSize: number;
  /** Planned calendar month (`YYYY-MM`). */
  month: string;
  phase: VolumePhase;
  /** ISO time of the last RestoreObject that started or refreshed a restore. */
  requestedAt: string | null;
  /** RestoreObject requests sent for this volume (started or refreshed). */
  restoreRequests: number;
  /** Expiry of the restored copy as last seen (ISO), null when unknown. */
  restoreExpiry: string | null;
  /** Bytes fetched from the store for this volume, re-fetches included. */
  downloadedBytes: number;
  /** The same by calendar month of the download (absent in jobs saved before it was kept). */
  downloadedByMonth?: Record<string, number>;
  /** ISO time before which no restore is requested (deferred: the month's allowance was used up). */
  notBefore?: string | null;
  /** Times a restored copy was found expired before its download finished. */
  expiredCopies: number;
  lastError: string | null;
}

export interface JobStream {
  streamId: string;
  kind: 'full' | 'incremental';
  from: string | null;
  to: { name: string; guid: string };
  received: boolean;
  receivedAt: string | null;
  /** When its first `zfs receive` started (absent: never, or a job saved before this was kept). */
  receiveStartedAt?: string | null;
  /**
   * btrfs: the names in the target directory just before this stream's
   * latest receive began, so what that receive left, if it was cut off, is
   * told from what was there before (which is never deleted).
   */
  receiveBefore?: string[];
}

/** Money actually committed, by calendar month of the request (USD). */
export interface Spent {
  retrieval: number;
  requests: number;
  tempStorage: number;
}

export interface RestoreJob {
  v: 1;
  dataset: string;
  snapshot: { name: string; guid: string };
  createdAt: string;
  options: Required<Pick<RestorePlanOptions, 'mode' | 'tier' | 'freeEgressGB' | 'reserveGB'>> & { budgetUSD?: number; downloadDays?: number };
  plan: RestorePlan;
  streams: JobStream[];
  volumes: JobVolume[];
  /** Target dataset, fixed by the first `restore run`. */
  target: string | null;
  /** The target existed and the user passed --force: the full stream overwrites it. */
  force: boolean;
  /**
   * guid of the dataset that stood at the target when --force was given: a
   * later run without --force overwrites only that dataset (absent in jobs
   * saved before it was recorded: then any; null, zfs reported none: none,
   * --force is needed again).
   */
  forcedTargetGuid?: string | null;
  /** Set just before the full stream's receive starts: from then on the target is ours. */
  fullReceiveStartedAt: string | null;
  /**
   * The same moment by the machine's real clock (ms), which zfs's
   * `creation` of a dataset left by that receive is compared with (the
   * injectable clock may be a test's).
   */
  fullReceiveStartedWallMs?: number;
  /** When a run last saved the job, by the machine's real clock (ms): bounds what an interrupted run can have created. */
  savedWallMs?: number;
  /** Stored bytes downloaded per calendar month (`YYYY-MM`, by the injected clock). */
  egressByMonth: Record<string, number>;
  /** Restore spending per calendar month. */
  spentByMonth: Record<string, Spent>;
  /** HEAD of every volume done (all objects present, sizes right) before any money was spent. */
  preflightDone: boolean;
  /** What the last run left to do, and when. */
  next: NextAction | null;
  /**
   * Set when a volume is found damaged (./damage.ts): the position in the
   * chain of the first stream with a damaged volume, and whether the restore
   * had spent nothing yet when the damage became known (then it is stopped
   * altogether). Absent: nothing damaged.
   */
  damage?: { fromStream: number; beforeSpending: boolean };
  finishedAt: string | null;
}

/** The next step of a restore, as the last run saw it. */
export interface NextAction {
  /**
   * `done`; `poll`: a restore is running, run again soon; `wait-until`:
   * nothing to do before `at`; `blocked`: a damaged object stops the restore,
   * `what` says what is still possible and the remedy.
   */
  kind: 'done' | 'poll' | 'wait-until' | 'blocked';
  /** ISO instant (for `wait-until`), else null. */
  at: string | null;
  what: string;
}

export function jobKey(dataset: string): string {
  return `restore/${dataset}`;
}

export function loadJob(manifest: Manifest, dataset: string): RestoreJob | null {
  const v = manifest.getValue(jobKey(dataset));
  if (v === undefined || v === null) return null;
  const job = v as RestoreJob;
  if (job.v !== 1 || job.dataset !== dataset) throw new ManifestError(`the saved restore of ${dataset} has an unknown format: run "zbk restore plan ${dataset}" again`, 'RESTORE_STATE');
  return job;
}

export function saveJob(manifest: Manifest, job: RestoreJob): void {
  manifest.setValue(jobKey(job.dataset), job);
}

/** Every saved restore job. */
export function listJobs(manifest: Manifest): RestoreJob[] {
  const out: RestoreJob[] = [];
  for (const d of manifest.datasets()) {
    const j = loadJob(manifest, d.name);
    if (j) out.push(j);
  }
  return out;
}

/** A volume of the chain as the planner and the downloader need it. */
export interface ChainVolume extends RestoreVolume {
  record: VolumeRecord;
}

/**
 * The chain's volumes in receive order. Every volume must be complete with
 * known sizes; anything else is an IntegrityError naming the object (the
 * manifest says the stream is complete, so a gap is damage, not progress).
 */
export function chainVolumes(chain: readonly StreamWithVolumes[]): ChainVolume[] {
  const out: ChainVolume[] = [];
  chain.forEach((s, streamIndex) => {
    const vols = [...s.volumes].sort((a, b) => a.volumeIndex - b.volumeIndex);
    if (vols.length === 0) throw new IntegrityError(`stream ${s.streamId} (@${s.to.name}) has no volumes in the manifest`, 'CHAIN_VOLUME_MISSING');
    vols.forEach((v, i) => {
      if (v.volumeIndex !== i) throw new IntegrityError(`volume ${i} of stream ${s.streamId} (@${s.to.name}) is missing from the manifest`, 'CHAIN_VOLUME_MISSING');
      const record = v.state === 'complete' ? volumeRecordOf(s, v) : null;
      if (!record) {
        throw new IntegrityError(`object ${v.key} of stream ${s.streamId} (@${s.to.name}) is not complete (state ${v.state})`, 'CHAIN_VOLUME_MISSING');
      }
      out.push({
        key: v.key,
        streamId: s.streamId,
        streamIndex,
        volumeIndex: v.volumeIndex,
        bytes: record.storedSize,
        plaintextBytes: record.plaintextSize,
        record,
      });
    });
  });
  return out;
}

export function recordOf(v: JobVolume): VolumeRecord {
  return {
    index: v.volumeIndex,
    key: v.key,
    plaintextSize: v.plaintextSize,
    plaintextSha256: v.plaintextSha256,
    storedSize: v.storedSize,
    partCount: v.partCount,
    partSize: v.partSize,
  };
}

/** Staged file of a volume: `<stagingDir>/<dataset with / as _>/<streamId>/<index>.zbkv`. */
export function stagedPath(stagingDir: string, dataset: string, v: Pick<JobVolume, 'streamId' | 'volumeIndex'>): string {
  return join(stagingDir, dataset.replace(/[/@#]/g, '_'), v.streamId, `${String(v.volumeIndex).padStart(6, '0')}.zbkv`);
}

export function monthOf(d: Date): string {
  return d.toISOString().slice(0, 7);
}

/** A local-directory store (as `openStore` opens it): nothing to thaw, no egress. */
export function isLocalStore(store: object): boolean {
  return (store as { kind?: unknown }).kind === 'local';
}
