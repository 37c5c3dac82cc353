/**
 * `zbk push`: for each dataset, upload the delta between the last pushed
 * snapshot and the newest one, crash-safely.
 *
 * Order of effects (see docs/ARCHITECTURE.md, "Write ordering"):
 *   lock → orphan uploads aborted → stream row (uploading, with its send
 *   flags) → send holds → zfs send → sealed parts, each checkpointed after the
 *   store acknowledged it → volumes completed and verified → stream record in
 *   the store → stream row complete → base protection moved to the new base
 *   (./push/base-protection.ts) → manifest mirror.
 * A process killed anywhere resumes on the next push of the same dataset:
 * the same send is run again with the recorded flags (./push/send-flags.ts),
 * every skipped part is compared with its checkpointed plaintext hash, and
 * only the rest is uploaded.
 */
import { randomBytes } from 'node:crypto';
import type { Keyring, VolumeMetadata } from '../crypto/types.js';
import { sealedPartSize } from '../crypto/index.js';
import { ExitCode, OperationError, UsageError, ZbkError, exitCodeOf } from '../errors.js';
import { BLOB_STREAM_RECORD, VOLUME_META_HEADER, streamRecordKey, type StreamRecord } from '../layout.js';
import { describeHolder, type Lock } from '../manifest/lock.js';
import type { Manifest } from '../manifest/manifest.js';
import { manifestBehindStore, writeMirror } from '../manifest/mirror.js';
import type { StreamRow, StreamWithVolumes, SnapshotRow } from '../manifest/types.js';
import { snapshotRefsOf, volumeRecordOf } from '../manifest/records.js';
import { AbortError, ResumeMismatchError } from '../pipeline/errors.js';
import { uploadStream, type ResumeState, type UploadResult } from '../pipeline/upload.js';
import { NoSuchUploadError } from '../store/errors.js';
import { lockManifest, openKeyring, openManifest, type ServiceContext } from './context.js';
import { underWriterLease } from './lease/with-lease.js';
import { crashPoint } from './crash-point.js';
import { abortOrphanUploads } from './orphans.js';
import { redactSecrets, runHookCommand, sendWebhook, type HookOutcome } from './hooks.js';
import { failureFacts, failureHookEnv, isInvocationError, markReported, recordPushFailure, recordPushSuccess, reportEarlyPushFailure } from './push/failure.js';
import { chainHealth } from './chain-health.js';
import type { BaseRef } from './push/base-protection.js';
import { dryRunResult, nothingResult, pushedResult, type DatasetPushResult, type SentStream } from './push/result.js';
import type { FlagChoice } from './push/send-flags.js';
import { snapshotLabel, type PushSnapshot, type PushSource } from './push/source.js';
import { pushSourceFor, sourceListingFor } from './push/sources.js';
import { uploadPacer } from './bandwidth.js';

export { BASE_HOLD_TAG, SEND_HOLD_TAG } from './push/base-protection.js';
export type { DatasetPushResult } from './push/result.js';

export interface PushOptions {
  datasets: string[];
  /** Short snapshot name to push instead of the newest. */
  snapshot?: string;
  /**
   * Send a full stream even when an incremental base exists (consolidation
   * re-bases a long chain this way). The target may equal the last pushed
   * snapshot.
   */
  full?: boolean;
  /**
   * With `full`: push nothing when a complete full stream of the target
   * snapshot exists that is not one of these stream ids (checked under the
   * manifest lock). Consolidation passes the streams that existed when it
   * decided, so two consolidations at once upload one new full, not two.
   */
  fullUnlessMadeSince?: string[];
  dryRun?: boolean;
  /**
   * Called with the dry-run estimate of a full stream requested by `full`
   * just before its upload starts, so the caller can show its cost first.
   */
  onFullEstimate?: (estimate: DatasetPushResult) => void;
  /** Wait for another zbk holding the lock (default) or fail at once. */
  wait?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: PushProgress) => void;
  /**
   * A stream's upload begins (its send started, before the first part) or
   * ends (stored and committed; `plaintextBytes` is its exact size). A
   * stream that fails has no 'end'.
   */
  onStream?: (e: PushStreamEvent) => void;
}

export interface PushStreamEvent {
  event: 'start' | 'end';
  dataset: string;
  snapshot: string;
  estimatedBytes: number | null;
  plaintextBytes: number;
}

export interface PushProgress {
  dataset: string;
  snapshot: string;
  plaintextBytes: number;
  /** From `zfs send -nP` where available. */
  estimatedBytes: number | null;
  volumeIndex: number;
  partNumber: number;
}

/** A dataset whose push failed while the others went on (already recorded and alerted). */
export interface PushFailure {
  dataset: string;
  code: string;
  message: string;
  exitCode: number;
}

export interface PushResult {
  results: DatasetPushResult[];
  /** Datasets whose push failed; the command exits with the first one's code. */
  failed: PushFailure[];
  orphanUploadsAborted: number;
  warnings: string[];
}

/** Usage errors of a dataset name that, for a configured dataset, mean it is not there now. */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set(['NOT_BTRFS', 'NOT_SUBVOLUME', 'NO_SUCH_DATASET']);

/** Exit codes of failures that are one dataset's own (the run goes on with the others). */
const DATASET_FAILURES: ReadonlySet<number> = new Set([ExitCode.FAILURE, ExitCode.USAGE, ExitCode.INTEGRITY, ExitCode.ZFS]);

function datasetOwnFailure(err: unknown): boolean {
  return !(err instanceof AbortError) && DATASET_FAILURES.has(exitCodeOf(err));
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

const full = snapshotLabel;

/** Choose the snapshot to push: --snapshot (its short name, or its full name), else the newest matching the configured pattern. */
function chooseTarget(snapshots: PushSnapshot[], dataset: string, wanted: string | undefined, pattern: string | undefined): PushSnapshot {
  if (wanted) {
    // Its short name, its full name, or (btrfs) the last part of its path when only one has it.
    const byLast = snapshots.filter((x) => x.shortName.endsWith(`/${wanted}`));
    const s = snapshots.find((x) => x.shortName === wanted || x.name === wanted) ?? (byLast.length === 1 ? byLast[0] : undefined);
    if (!s) {
      const near = snapshots.slice(-3).map((x) => x.shortName).join(', ');
      throw new UsageError(`snapshot ${full(dataset, wanted)} does not exist${near ? ` (the newest: ${near})` : ''}`, 'NO_SUCH_SNAPSHOT');
    }
    return s;
  }
  const re = pattern ? new RegExp(pattern) : null;
  const eligible = re ? snapshots.filter((s) => re.test(s.shortName)) : snapshots;
  const newest = eligible[eligible.length - 1];
  if (!newest) {
    throw new UsageError(
      re ? `no snapshot of ${dataset} matches the configured pattern ${pattern}` : `${dataset} has no snapshots: create one first (zbk snapshot ${dataset})`,
      'NO_SNAPSHOTS',
    );
  }
  return newest;
}

/**
 * The creation order a new stream records for its snapshot (manifest and
 * stream record `createtxg`, by which chains and "latest" are ordered): the
 * order already recorded for that snapshot, else its createtxg (btrfs:
 * otransid) — raised to one more than the last pushed snapshot's when the
 * dataset now counts from lower (moved to another pool or filesystem), so
 * what is pushed later always orders after what was pushed before.
 */
function recordedOrder(manifest: Manifest, dataset: string, id: bigint, local: bigint, last: SnapshotRow | null): bigint {
  const known = manifest.snapshots(dataset).find((s) => s.guid === id);
  if (known) return known.createtxg;
  return last && last.createtxg >= local ? last.createtxg + 1n : local;
}

/** Rebuild the pipeline's resume state from the manifest's checkpoints. */
function resumeStateOf(manifest: Manifest, stream: StreamWithVolumes): ResumeState {
  const volumes: ResumeState['volumes'] = new Map();
  for (const v of stream.volumes) {
    const parts = new Map<number, { plaintextSize: number; plaintextSha256: string; sealedSize: number; etag: string; checksumSha256: string }>();
    for (const p of manifest.partsOf(stream.streamId, v.volumeIndex)) {
      parts.set(p.partNumber, {
        plaintextSize: p.plaintextSize,
        plaintextSha256: p.plaintextSha256,
        sealedSize: p.sealedSize,
        etag: p.etag,
        checksumSha256: p.checksumSha256 ?? '',
      });
    }
    const completed = v.state === 'complete' ? volumeRecordOf(stream, v) : null;
    volumes.set(v.volumeIndex, { key: v.key, uploadId: completed ? null : v.uploadId, completed, parts });
  }
  return { volumes };
}

export class PushService {
  private readonly warnings: string[] = [];

  /** Not readonly: a run swaps in the context whose store is guarded by the writer lease. */
  constructor(private ctx: ServiceContext) {}

  /**
   * Every failure of a (non-dry) run is recorded in the state dir and sent
   * to the failure hooks (./push/failure.ts): those of one dataset's push by
   * `pushDatasetWithHooks`, those before it (passphrase, key file, store,
   * lock, manifest, orphan cleanup) here, for every dataset of the run.
   */
  async run(opts: PushOptions): Promise<PushResult> {
    if (opts.datasets.length === 0) throw new UsageError('name at least one dataset (or configure [[dataset]] entries)');
    await this.checkUnconfiguredDatasets(opts);
    await this.checkRequestedSnapshot(opts);
    try {
      return await this.runUnreported(opts);
    } catch (err) {
      if (!opts.dryRun) await reportEarlyPushFailure(this.ctx.config, opts.datasets, err, this.ctx.log, this.ctx.now());
      throw err;
    }
  }

  private async runUnreported(opts: PushOptions): Promise<PushResult> {
    const keyring = await openKeyring(this.ctx);
    const lock = await this.lock(opts);
    let manifest: Manifest | null = null;
    try {
      manifest = openManifest(this.ctx, keyring);
      const m = manifest;
      const work = async (): Promise<PushResult> => {
        const orphanUploadsAborted = opts.dryRun ? 0 : await this.abortOrphans(m);
        const results: DatasetPushResult[] = [];
        const failed: PushFailure[] = [];
        let first: unknown = null;
        for (const dataset of opts.datasets) {
          try {
            results.push(await this.pushDatasetWithHooks(m, keyring, dataset, opts));
          } catch (err) {
            // One dataset's failure (its disk not mounted, a snapshot it cannot send) must not keep
            // the others from being pushed; a failure of the store, key, lock or manifest stops all.
            if (!datasetOwnFailure(err)) throw err;
            first ??= err;
            failed.push({ dataset, code: err instanceof ZbkError ? err.code : 'FAILED', message: messageOf(err), exitCode: exitCodeOf(err) });
          }
        }
        // Nothing pushed at all: the error as any command reports it.
        if (results.length === 0 && first !== null) throw first;
        return { results, failed, orphanUploadsAborted, warnings: this.warnings };
      };
      if (opts.dryRun) {
        const stale = await manifestBehindStore(this.ctx.store, keyring, m);
        if (stale) this.warn(stale.message);
        return await work();
      }
      return await underWriterLease(this.ctx, keyring, 'zbk push', async (leased) => {
        // Under the lease: nobody else writes a newer mirror between this check and the push.
        const stale = await manifestBehindStore(leased.store, keyring, m);
        if (stale) throw stale;
        const outer = this.ctx;
        this.ctx = leased;
        try {
          return await work();
        } finally {
          this.ctx = outer;
        }
      }, { wait: opts.wait ?? true });
    } finally {
      manifest?.close();
      lock.release();
    }
  }

  /**
   * A `--snapshot` that does not exist is a typo, refused (NO_SUCH_SNAPSHOT,
   * exit 2) before anything runs: no passphrase, no lock, no hooks, nothing
   * recorded. When zfs cannot list the snapshots here, the push itself
   * fails on it later, as a backup failure.
   */
  private async checkRequestedSnapshot(opts: PushOptions): Promise<void> {
    if (!opts.snapshot) return;
    for (const dataset of opts.datasets) {
      let snapshots: PushSnapshot[];
      try {
        snapshots = await sourceListingFor(this.ctx, dataset).listSnapshots(dataset);
      } catch (err) {
        if (isInvocationError(err)) throw err;
        continue;
      }
      chooseTarget(snapshots, dataset, opts.snapshot, undefined);
    }
  }

  /**
   * A dataset that is not configured can only have been named on the
   * command line: when zfs says it does not exist it is a typo, refused
   * (NO_SUCH_DATASET, exit 2) before anything runs, like a mistyped
   * `--snapshot`. A configured dataset that vanished from ZFS is a backup
   * failure (recorded, alerted), and so is one zfs cannot look up here.
   */
  private async checkUnconfiguredDatasets(opts: PushOptions): Promise<void> {
    const configured = new Set(this.ctx.config.datasets.map((d) => d.name));
    for (const dataset of opts.datasets) {
      if (configured.has(dataset)) continue;
      let exists: boolean;
      try {
        exists = await sourceListingFor(this.ctx, dataset).exists(dataset);
      } catch (err) {
        if (isInvocationError(err)) throw err;
        continue;
      }
      if (!exists) throw new UsageError(`dataset ${dataset} does not exist and is not configured (a typo?)`, 'NO_SUCH_DATASET');
    }
  }

  private async lock(opts: PushOptions): Promise<Lock> {
    return lockManifest(this.ctx.config, {
      wait: opts.wait ?? true,
      command: 'zbk push',
      onWait: (h) => this.ctx.log.info(`waiting for ${describeHolder(h)} to finish…`),
    });
  }

  /** Abort orphan multipart uploads (see ./orphans.ts). Safe only under the manifest lock. */
  async abortOrphans(manifest: Manifest): Promise<number> {
    const { aborted, waiting } = await abortOrphanUploads(this.ctx.store, manifest, this.ctx.now(), 'push');
    if (aborted > 0) this.ctx.log.info(`aborted ${aborted} orphan multipart upload(s)`);
    if (waiting > 0) this.ctx.log.info(`${waiting} unfinished upload(s) of streams this manifest does not know (another machine?) are left alone until they are 48 h old`);
    return aborted;
  }

  private async pushDatasetWithHooks(manifest: Manifest, keyring: Keyring, dataset: string, opts: PushOptions): Promise<DatasetPushResult> {
    const hooks = this.ctx.config.hooks;
    const env = { ZBK_DATASET: dataset };
    if (hooks.prePush && !opts.dryRun) {
      const o = await runHookCommand(hooks.prePush, env, hooks.timeoutSeconds);
      this.logHook(manifest, dataset, 'pre-push', o);
      if (!o.ok) this.warn(`pre-push ${o.what} failed (${o.detail ?? ''}); pushing anyway`);
    }
    let result: DatasetPushResult | null = null;
    let failure: unknown = null;
    try {
      result = await this.pushDataset(manifest, keyring, dataset, opts);
      return result;
    } catch (err) {
      failure = this.asBackupFailure(dataset, err);
      throw failure;
    } finally {
      if (!opts.dryRun) await this.afterDataset(manifest, dataset, result, failure);
    }
  }

  /**
   * After one dataset's push: record the outcome (state dir; a failure also
   * as a manifest event), run post_push (it pairs with pre_push, so it runs
   * after an invocation error too) and, unless the failure is an invocation
   * error (./push/failure.ts), send the webhook.
   */
  private async afterDataset(manifest: Manifest, dataset: string, result: DatasetPushResult | null, failure: unknown): Promise<void> {
    const hooks = this.ctx.config.hooks;
    const config = this.ctx.config;
    const alert = failure !== null && !isInvocationError(failure);
    const facts = failure === null ? null : failureFacts(failure, config);
    if (failure === null) recordPushSuccess(config, [dataset], this.ctx.now(), (m) => this.warn(m));
    else if (alert) {
      markReported(failure);
      recordPushFailure(config, [dataset], facts!, this.ctx.now(), (m) => this.warn(m));
      try {
        manifest.logEvent('push-failed', dataset, { message: facts!.message, code: facts!.code });
      } catch (err) {
        this.warn(`could not log the failed push in the manifest (${err instanceof Error ? err.message : String(err)})`);
      }
    }
    if (hooks.postPush) {
      const env = facts ? failureHookEnv(dataset, facts) : { ZBK_DATASET: dataset, ZBK_RESULT: 'success' };
      const o = await runHookCommand(hooks.postPush, env, hooks.timeoutSeconds);
      this.logHook(manifest, dataset, 'post-push', o);
      if (!o.ok) this.warn(`post-push ${o.what} failed (${o.detail ?? ''})`);
    }
    if (failure !== null && !alert) return;
    const msg = facts
      ? `zbk push ${dataset} failed: ${facts.message}`
      : `zbk push ${dataset}: ${result?.kind} ${dataset}@${result?.snapshot} (${result?.plaintextBytes ?? 0} bytes)`;
    const w = await sendWebhook(hooks, facts === null, msg, [...this.ctx.config.datasets.map((d) => d.name), dataset]);
    if (w) this.logHook(manifest, dataset, 'webhook', w);
    if (w && !w.ok) this.warn(`${w.what} failed (${w.detail ?? ''})`);
  }

  /**
   * Record a hook's outcome as a manifest event (`hook-result`), for
   * `zbk serve`'s page. `what` names no secret (a webhook is named by its
   * host); the detail (a hook's stderr) is redacted as webhook text is.
   */
  private logHook(manifest: Manifest, dataset: string, stage: 'pre-push' | 'post-push' | 'webhook', o: HookOutcome): void {
    try {
      const detail = o.detail === undefined ? null : redactSecrets(o.detail, this.ctx.config.hooks);
      manifest.logEvent('hook-result', dataset, { stage, ok: o.ok, what: o.what, detail });
    } catch (err) {
      this.warn(`could not log the ${stage} hook result in the manifest (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  /**
   * A configured dataset that is no longer a dataset where it was (its disk
   * not mounted: the path is a plain directory of the parent filesystem) is a
   * failed backup, recorded and alerted, not a typo (those are refused before
   * anything runs, for names not in the config).
   */
  private asBackupFailure(dataset: string, err: unknown): unknown {
    const configured = this.ctx.config.datasets.some((d) => d.name === dataset);
    if (!configured || !(err instanceof UsageError) || !UNAVAILABLE_CODES.has(err.code)) return err;
    return new OperationError(`${err.message} (is its filesystem mounted?)`, 'DATASET_UNAVAILABLE', { cause: err });
  }

  private warn(message: string): void {
    this.warnings.push(message);
    this.ctx.log.warn(message);
  }

  /** The source port of `dataset`, under its lock (the checks before the lock use `sourceListingFor`). */
  private source(manifest: Manifest, dataset: string): PushSource {
    return pushSourceFor(this.ctx, dataset, manifest, (msg) => this.warn(msg));
  }

  private async pushDataset(manifest: Manifest, keyring: Keyring, dataset: string, opts: PushOptions): Promise<DatasetPushResult> {
    const started = Date.now();
    const source = this.source(manifest, dataset);
    const snapshots = await source.listSnapshots(dataset);
    const pattern = this.ctx.config.datasets.find((d) => d.name === dataset)?.snapshotPattern;
    const target = chooseTarget(snapshots, dataset, opts.snapshot, pattern);
    const inFlight = manifest.findInFlightStream(dataset);
    // Holds a killed run left behind are released (but not those of the upload about to
    // resume); the last pushed base is protected (bookmark, or hold).
    if (!opts.dryRun) {
      await source.reconcile(dataset, inFlight);
      crashPoint('holds-reconciled');
    }

    // 1. An interrupted upload of this dataset: resume it if its snapshots are still here.
    let resumed = false;
    let partsSkipped = 0;
    if (inFlight && !opts.dryRun) {
      const toOk = (await source.resolveTarget(dataset, inFlight.to)) !== null;
      const fromOk = inFlight.from === null || (await source.resolveBase(dataset, inFlight.from)) !== null;
      if (toOk && fromOk) {
        this.ctx.log.info(`${dataset}: resuming the interrupted upload of @${inFlight.to.name}`);
        const r = await this.sendStream(manifest, source, keyring, inFlight, opts, resumeStateOf(manifest, inFlight));
        resumed = true;
        partsSkipped += r.upload.partsSkipped;
        // A requested full stream still has to be sent after an incremental was resumed.
        if (inFlight.to.guid === (await source.pushedIdentity(dataset, target)) && (!opts.full || inFlight.from === null)) {
          return pushedResult(this.ctx.config, dataset, inFlight, r, started, { resumed, partsSkipped, reason: null });
        }
      } else {
        this.warn(`${dataset}: the interrupted upload of ${full(dataset, inFlight.to.name)} cannot resume (its snapshot is gone); discarding it`);
        await this.discardStream(manifest, inFlight.streamId, 'snapshot destroyed before the upload finished');
      }
    }

    // 2. Base of the incremental: the last pushed snapshot, if it still exists here with the same
    //    guid (or, on OpenZFS, zbk's bookmark of it).
    const last: SnapshotRow | null = manifest.lastPushedSnapshot(dataset);
    const targetId = await source.pushedIdentity(dataset, target);
    if (last && targetId !== null && last.guid === targetId && !opts.full) {
      return nothingResult(dataset, target, started, 'already pushed', resumed, partsSkipped);
    }
    if (opts.full && opts.fullUnlessMadeSince) {
      const before = new Set(opts.fullUnlessMadeSince);
      const made = targetId !== null && manifest.streams(dataset).some((x) => x.state === 'complete' && x.kind === 'full' && x.to.guid === targetId && !before.has(x.streamId));
      if (made) return nothingResult(dataset, target, started, `a full stream of @${target.shortName} was pushed meanwhile`, resumed, partsSkipped);
    }
    let base: BaseRef | null = null;
    let reason: string | null = null;
    if (opts.full) {
      reason = 'a full stream was requested';
    } else if (!last) {
      reason = 'first push of this dataset';
    } else {
      base = await source.resolveBase(dataset, last);
      // Compared on this source, not with the recorded order: after a move to another pool or
      // filesystem the counters start again, and a newer snapshot there can count lower.
      const lastHere = base ? await source.localOrder(dataset, last) : null;
      if (lastHere !== null && lastHere >= target.createtxg) {
        return nothingResult(dataset, target, started, `@${target.shortName} is not newer than the last pushed @${last.name}`, resumed, partsSkipped);
      }
      if (!base) reason = source.baseGoneReason(last);
      else if (base.sendFrom.includes('#')) this.ctx.log.info(`${dataset}: @${last.name} is gone; sending incrementally from zbk's bookmark of it`);
    }
    // 3. The send flags: an incremental keeps its chain's raw-ness, unless the config insists otherwise.
    const choice = await this.chooseFlags(manifest, source, dataset, base);
    if (choice.fullBecause) {
      base = null;
      reason = choice.fullBecause;
    }
    if (reason) this.ctx.log.info(`${dataset}: sending a full stream: ${reason}`);
    if (base) this.warnIfChainBroken(manifest, dataset);

    if (opts.dryRun) return this.dryRun(source, dataset, target, base, reason, choice.flags, started);
    if (opts.full && opts.onFullEstimate) opts.onFullEstimate(await this.dryRun(source, dataset, target, null, reason, choice.flags, started));

    // 4. A new stream (its target made sendable first: btrfs pins it).
    const toId = await source.prepareTarget(dataset, target);
    crashPoint('target-prepared');
    const order = recordedOrder(manifest, dataset, toId, target.createtxg, last);
    const streamId = hex(randomBytes(16));
    const row = manifest.beginStream({
      streamId,
      dataset,
      from: base ? { name: base.name, guid: base.guid } : null,
      to: { name: target.shortName, guid: toId, createtxg: order, creation: target.creation },
      volumeSize: this.ctx.config.upload.volumeSize,
      partSize: this.ctx.config.upload.partSize,
      startedAt: this.ctx.now(),
      datasetOpaqueId: keyring.opaqueName('dataset', dataset),
      sendFlags: choice.flags,
    });
    const stream = manifest.stream(row.streamId);
    if (!stream) throw new OperationError(`internal: stream ${streamId} vanished from the manifest`);
    const withVolumes: StreamWithVolumes = { ...stream, volumes: [] };
    const r = await this.sendStream(manifest, source, keyring, withVolumes, opts, undefined);
    partsSkipped += r.upload.partsSkipped;
    return pushedResult(this.ctx.config, dataset, withVolumes, r, started, { resumed, partsSkipped, reason });
  }

  /** An incremental on top of a chain with a damaged volume restores nothing: say so, and the way out. */
  private warnIfChainBroken(manifest: Manifest, dataset: string): void {
    const h = chainHealth(manifest, dataset);
    if (h.ok) return;
    this.warn(`${dataset}: the chain is broken (${h.brokenBy.map((o) => o.key).join(', ')} damaged): this incremental will not be restorable either; ${h.remedy}`);
  }

  /**
   * The flags of a new stream of `dataset` from `base` (null: a full stream),
   * per the dataset's `raw` setting and the raw-ness of the stream that ends
   * at the base in the chain a restore would use.
   */
  private async chooseFlags(manifest: Manifest, source: PushSource, dataset: string, base: BaseRef | null): Promise<FlagChoice> {
    return source.chooseFlags(dataset, base ? (this.streamEndingAt(manifest, dataset, base.guid)?.sendFlags ?? null) : undefined);
  }

  /** The complete stream ending at `guid` that a restore of it would use. */
  private streamEndingAt(manifest: Manifest, dataset: string, guid: bigint): StreamRow | undefined {
    try {
      return manifest.chainFor(dataset, guid).at(-1);
    } catch {
      return manifest.streams(dataset).find((s) => s.state === 'complete' && s.to.guid === guid);
    }
  }

  /**
   * Abort a stream's in-flight uploads in the store, then mark them aborted
   * and the stream abandoned in one manifest transaction. A process killed
   * in between leaves the stream uploading with upload ids that are gone:
   * the next resume replaces them (or discards the stream again). The
   * volumes are re-read: a failed resume may have replaced a vanished upload
   * with a new one since the caller loaded the stream.
   */
  private async discardStream(manifest: Manifest, streamId: string, why: string): Promise<void> {
    const open = manifest.volumes(streamId).flatMap((v) => (v.state === 'uploading' && v.uploadId ? [{ key: v.key, uploadId: v.uploadId }] : []));
    for (const u of open) await this.ctx.store.abortMultipartUpload(u.key, u.uploadId);
    crashPoint('discard-uploads-aborted');
    manifest.abandonStream(streamId, why, open);
  }

  /**
   * Run `zfs send` for a stream row and upload it (resuming when `resume` is
   * given). On a resume whose bytes differ from what was checkpointed, the
   * old upload is discarded and the stream restarts afresh under a new id,
   * with the same flags.
   */
  private async sendStream(
    manifest: Manifest,
    source: PushSource,
    keyring: Keyring,
    stream: StreamWithVolumes,
    opts: PushOptions,
    resume: ResumeState | undefined,
  ): Promise<SentStream> {
    const ds = stream.dataset;
    // Those recorded when it began: a resume re-sends exactly these, or fails with SEND_FLAGS_UNAVAILABLE.
    const flags = await source.sendFlagsOf(stream);
    return source.whileSending(ds, stream, async () => {
      try {
        return await this.uploadOnce(manifest, source, keyring, stream, opts, resume, flags);
      } catch (err) {
        if (!(err instanceof ResumeMismatchError)) throw err;
        // The re-run send produced different bytes than the checkpoints: never
        // mix them. Discard the old upload and start a fresh stream.
        this.warn(`${ds}: resumed data differs from what was uploaded before (${err.message}); restarting @${stream.to.name} from scratch`);
        await this.discardStream(manifest, stream.streamId, 'resume mismatch');
        const fresh = manifest.beginStream({
          streamId: hex(randomBytes(16)),
          dataset: ds,
          from: stream.from,
          to: stream.to,
          volumeSize: this.ctx.config.upload.volumeSize,
          partSize: this.ctx.config.upload.partSize,
          startedAt: this.ctx.now(),
          datasetOpaqueId: keyring.opaqueName('dataset', ds),
          sendFlags: flags,
        });
        Object.assign(stream, fresh, { volumes: [] });
        return await this.uploadOnce(manifest, source, keyring, stream, opts, undefined, flags);
      }
    });
  }

  private async uploadOnce(
    manifest: Manifest,
    source: PushSource,
    keyring: Keyring,
    stream: StreamWithVolumes,
    opts: PushOptions,
    resume: ResumeState | undefined,
    flags: string[],
  ): Promise<SentStream> {
    const { store, config } = this.ctx;
    const ds = stream.dataset;
    const base = stream.from ? await source.resolveBase(ds, stream.from) : null;
    if (stream.from && !base) throw new OperationError(`${ds}: the base ${full(ds, stream.from.name)} of this stream is gone; run the push again to send a full stream`, 'BASE_GONE');
    const what = await source.resolveTarget(ds, stream.to);
    if (what === null) throw new OperationError(`${ds}: ${full(ds, stream.to.name)} is gone; run the push again`, 'NO_SUCH_SNAPSHOT');
    const request = { snapshot: what, ...(base ? { from: base.sendFrom } : {}), flags };
    const estimate = await source.estimate(request);
    const send = await source.openSend(request);
    opts.onStream?.({ event: 'start', dataset: ds, snapshot: stream.to.name, estimatedBytes: estimate, plaintextBytes: 0 });
    send.done.catch(() => undefined);
    const streamIdBytes = Buffer.from(stream.streamId, 'hex');
    const meta = (volumeIndex: number): Record<string, string> => {
      const refs = snapshotRefsOf(stream);
      const m: VolumeMetadata = {
        dataset: ds,
        streamId: stream.streamId,
        fromSnapshot: refs.from,
        toSnapshot: refs.to,
        volumeIndex,
        volumeSize: stream.volumeSize,
        partSize: stream.partSize,
        startedAt: stream.startedAt.toISOString(),
      };
      return { [VOLUME_META_HEADER]: keyring.sealVolumeMetadata(m) };
    };
    let result: UploadResult;
    try {
      result = await uploadStream({
        store,
        keyring,
        source: send.stream,
        streamId: streamIdBytes,
        partSize: stream.partSize,
        volumeSize: stream.volumeSize,
        parallel: config.upload.parallel,
        // [upload] limit / --limit-upload: one bucket for every part and stream of the run.
        pacer: uploadPacer(this.ctx),
        storageClass: config.store.dataStorageClass,
        volumeMetadata: meta,
        sealedSize: sealedPartSize,
        resume,
        signal: opts.signal,
        checkpoint: {
          volumeStarted: (v) => {
            manifest.recordVolumeStarted(stream.streamId, v.volumeIndex, v.key, v.uploadId, config.store.dataStorageClass);
          },
          partAcknowledged: (p) => {
            manifest.recordPartAcknowledged({ streamId: stream.streamId, ...p });
            crashPoint('part-acked');
          },
          volumeCompleted: (v) => {
            crashPoint('volume-completed-in-store');
            manifest.recordVolumeCompleted({
              streamId: stream.streamId,
              volumeIndex: v.index,
              storedSize: v.storedSize,
              partCount: v.partCount,
              plaintextSize: v.plaintextSize,
              plaintextSha256: v.plaintextSha256,
              etag: v.etag ?? null,
              uploadedAt: this.ctx.now(),
            });
          },
        },
        onProgress: (p) =>
          opts.onProgress?.({
            dataset: ds,
            snapshot: stream.to.name,
            plaintextBytes: p.plaintextBytes,
            estimatedBytes: estimate,
            volumeIndex: p.volumeIndex,
            partNumber: p.partNumber,
          }),
      });
      // The stream ends only after zfs exited 0, but make the failure explicit.
      await send.done;
    } catch (err) {
      send.kill();
      if (err instanceof NoSuchUploadError) {
        throw new OperationError(`${ds}: an upload vanished from the store during the push (${err.message}); run the push again`, 'UPLOAD_VANISHED', { cause: err });
      }
      throw err;
    }

    await this.commitStream(manifest, source, keyring, stream, result, flags);
    opts.onStream?.({ event: 'end', dataset: ds, snapshot: stream.to.name, estimatedBytes: estimate, plaintextBytes: result.plaintextSize });
    return { upload: result, estimatedBytes: estimate, sendFlags: flags };
  }

  /**
   * Every volume is stored: the stream record first (its presence in the
   * bucket means "complete"), then the manifest, then the base protection
   * moves to the new base, then the mirror.
   */
  private async commitStream(manifest: Manifest, source: PushSource, keyring: Keyring, stream: StreamRow, result: UploadResult, sendFlags: string[]): Promise<void> {
    const { store, config } = this.ctx;
    const completedAt = this.ctx.now();
    const record: StreamRecord = {
      v: 1,
      streamId: stream.streamId,
      dataset: stream.dataset,
      ...snapshotRefsOf(stream),
      plaintextSize: result.plaintextSize,
      storedSize: result.storedSize,
      volumes: result.volumes,
      startedAt: stream.startedAt.toISOString(),
      completedAt: completedAt.toISOString(),
      sendFlags,
      ...(source.kind === 'zfs' ? {} : { source: source.kind }),
    };
    const sealed = keyring.sealBlob(BLOB_STREAM_RECORD, Buffer.from(JSON.stringify(record), 'utf8'));
    await store.put(streamRecordKey(stream.streamId), sealed, { storageClass: config.store.metaStorageClass });
    crashPoint('stream-record-written');
    manifest.completeStream(stream.streamId, { plaintextSize: result.plaintextSize, storedSize: result.storedSize, completedAt, sendFlags });
    crashPoint('stream-committed');
    await source.reconcile(stream.dataset, null);
    crashPoint('holds-moved');
    await this.mirror(manifest, keyring);
  }

  private async mirror(manifest: Manifest, keyring: Keyring): Promise<void> {
    try {
      await writeMirror(manifest, this.ctx.store, keyring, {
        keep: this.ctx.config.mirrors,
        storageClass: this.ctx.config.store.metaStorageClass,
        now: this.ctx.now,
      });
    } catch (err) {
      // The push itself is safe (stream record + local manifest); the next run mirrors again.
      this.warn(`could not write the manifest mirror: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private async dryRun(
    source: PushSource,
    dataset: string,
    target: PushSnapshot,
    base: BaseRef | null,
    reason: string | null,
    sendFlags: string[],
    started: number,
  ): Promise<DatasetPushResult> {
    // btrfs estimates nothing (null), so what is sent (the pin, made only when pushing) does not matter here.
    const estimate = await source.estimate({ snapshot: target.name, ...(base ? { from: base.sendFrom } : {}), flags: sendFlags });
    const fullBytes = estimate === null && !base ? await source.fullStreamSize(target) : target.referenced;
    return dryRunResult(this.ctx.config, { dataset, target: { ...target, referenced: fullBytes }, base: base?.name ?? null, reason, sendFlags, estimate, started });
  }
}

/** Library entry point: push datasets with a ready context. */
export function push(ctx: ServiceContext, opts: PushOptions): Promise<PushResult> {
  return new PushService(ctx).run(opts);
}
