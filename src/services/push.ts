/**
 * `zbk push`: for each dataset, upload the delta between the last pushed
 * snapshot and the newest one, crash-safely.
 *
 * Order of effects (see docs/ARCHITECTURE.md, "Write ordering"):
 *   lock → orphan uploads aborted → stream row (uploading) → holds →
 *   zfs send → sealed parts, each checkpointed after the store acknowledged it →
 *   volumes completed and verified → stream record in the store →
 *   stream row complete → holds moved to the new base → manifest mirror.
 * A process killed anywhere resumes on the next push of the same dataset:
 * the same send is run again, every skipped part is compared with its
 * checkpointed plaintext hash, and only the rest is uploaded.
 */
import { randomBytes } from 'node:crypto';
import type { Keyring, VolumeMetadata } from '../crypto/types.js';
import { sealedPartSize } from '../crypto/index.js';
import { OperationError, UsageError } from '../errors.js';
import { BLOB_STREAM_RECORD, VOLUME_META_HEADER, streamRecordKey, type StreamRecord } from '../layout.js';
import { acquireLock, describeHolder, type Lock } from '../manifest/lock.js';
import type { Manifest } from '../manifest/manifest.js';
import { writeMirror } from '../manifest/mirror.js';
import type { StreamWithVolumes, SnapshotRow } from '../manifest/types.js';
import { snapshotRefsOf, volumeRecordOf } from '../manifest/records.js';
import { ResumeMismatchError } from '../pipeline/errors.js';
import { uploadStream, type ResumeState, type UploadResult } from '../pipeline/upload.js';
import { estimatePushCost } from '../cost/model.js';
import { priceTable, type StorageClass } from '../cost/prices.js';
import type { Snapshot } from '../zfs/types.js';
import { NoSuchUploadError } from '../store/errors.js';
import { manifestPath, openKeyring, openManifest, type ServiceContext } from './context.js';
import { crashPoint } from './crash-point.js';
import { abortOrphanUploads } from './orphans.js';
import { runHookCommand, sendWebhook } from './hooks.js';

/** Hold tag on the base of the next incremental (kept until a newer base is safely uploaded). */
export const BASE_HOLD_TAG = 'zbk';
/** Hold tag on the snapshots a running send reads. */
export const SEND_HOLD_TAG = 'zbk-send';

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
  /** Wait for another zbk holding the lock (default) or fail at once. */
  wait?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: PushProgress) => void;
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

export interface DatasetPushResult {
  dataset: string;
  /** Short name of the snapshot now pushed (or that would be, with --dry-run). */
  snapshot: string;
  /** Short name of the incremental base; null for a full stream. */
  base: string | null;
  kind: 'full' | 'incremental' | 'none';
  /** Why a full stream was sent, or why nothing was sent. */
  reason: string | null;
  plaintextBytes: number;
  storedBytes: number;
  objects: number;
  /** True when an interrupted upload was resumed. */
  resumed: boolean;
  /** Parts found already uploaded and verified by hash instead of re-sent. */
  partsSkipped: number;
  durationSeconds: number;
  /** Added to the monthly bill (USD) by this stream. */
  estimatedMonthlyCost: number;
  /** One-time request cost (USD). */
  estimatedUploadCost: number;
  /** `zfs send -nP` estimate (dry run), null where zfs cannot tell. */
  estimatedBytes: number | null;
  streamId: string | null;
  dryRun: boolean;
}

export interface PushResult {
  results: DatasetPushResult[];
  orphanUploadsAborted: number;
  warnings: string[];
}

/** The base of an incremental: its snapshot identity, and what `zfs send -i` reads it from (snapshot or bookmark). */
interface BaseRef {
  name: string;
  guid: bigint;
  sendFrom: string;
}

interface HoldRecord {
  tag: string;
  snapshot: string;
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function full(dataset: string, short: string): string {
  return `${dataset}@${short}`;
}

/** Choose the snapshot to push: --snapshot, else the newest matching the configured pattern. */
function chooseTarget(snapshots: Snapshot[], dataset: string, wanted: string | undefined, pattern: string | undefined): Snapshot {
  if (wanted) {
    const s = snapshots.find((x) => x.shortName === wanted);
    if (!s) throw new UsageError(`snapshot ${full(dataset, wanted)} does not exist`, 'NO_SUCH_SNAPSHOT');
    return s;
  }
  const re = pattern ? new RegExp(pattern) : null;
  const eligible = re ? snapshots.filter((s) => re.test(s.shortName)) : snapshots;
  const newest = eligible[eligible.length - 1];
  if (!newest) {
    throw new UsageError(
      re ? `no snapshot of ${dataset} matches the configured pattern ${pattern}` : `${dataset} has no snapshots: create one first (zfs snapshot ${dataset}@name)`,
      'NO_SNAPSHOTS',
    );
  }
  return newest;
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

  constructor(private readonly ctx: ServiceContext) {}

  async run(opts: PushOptions): Promise<PushResult> {
    if (opts.datasets.length === 0) throw new UsageError('name at least one dataset (or configure [[dataset]] entries)');
    const keyring = await openKeyring(this.ctx);
    const lock = await this.lock(opts);
    let manifest: Manifest | null = null;
    try {
      manifest = openManifest(this.ctx, keyring);
      const m = manifest;
      const orphanUploadsAborted = opts.dryRun ? 0 : await this.abortOrphans(m);
      const results: DatasetPushResult[] = [];
      for (const dataset of opts.datasets) {
        results.push(await this.pushDatasetWithHooks(m, keyring, dataset, opts));
      }
      return { results, orphanUploadsAborted, warnings: this.warnings };
    } finally {
      manifest?.close();
      lock.release();
    }
  }

  private async lock(opts: PushOptions): Promise<Lock> {
    return acquireLock(manifestPath(this.ctx.config), {
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
      if (!o.ok) this.warn(`pre-push ${o.what} failed (${o.detail ?? ''}); pushing anyway`);
    }
    let result: DatasetPushResult | null = null;
    let failure: unknown = null;
    try {
      result = await this.pushDataset(manifest, keyring, dataset, opts);
      return result;
    } catch (err) {
      failure = err;
      manifest.logEvent('push-failed', dataset, { message: err instanceof Error ? err.message : String(err) });
      throw err;
    } finally {
      if (!opts.dryRun) {
        if (hooks.postPush) {
          const o = await runHookCommand(hooks.postPush, { ...env, ZBK_RESULT: failure ? 'failure' : 'success' }, hooks.timeoutSeconds);
          if (!o.ok) this.warn(`post-push ${o.what} failed (${o.detail ?? ''})`);
        }
        const msg = failure
          ? `zbk push ${dataset} failed: ${failure instanceof Error ? failure.message : String(failure)}`
          : `zbk push ${dataset}: ${result?.kind} ${result?.snapshot} (${result?.plaintextBytes ?? 0} bytes)`;
        const w = await sendWebhook(hooks, !failure, msg);
        if (w && !w.ok) this.warn(`${w.what} failed (${w.detail ?? ''})`);
      }
    }
  }

  private warn(message: string): void {
    this.warnings.push(message);
    this.ctx.log.warn(message);
  }

  private async pushDataset(manifest: Manifest, keyring: Keyring, dataset: string, opts: PushOptions): Promise<DatasetPushResult> {
    const started = Date.now();
    const zfs = this.ctx.zfs;
    const snapshots = await zfs.listSnapshots(dataset);
    const pattern = this.ctx.config.datasets.find((d) => d.name === dataset)?.snapshotPattern;
    const target = chooseTarget(snapshots, dataset, opts.snapshot, pattern);
    const inFlight = manifest.findInFlightStream(dataset);
    // Holds a killed run left behind are released (but not those of the upload about to
    // resume); the last pushed base is held.
    if (!opts.dryRun) {
      await this.reconcileHolds(manifest, dataset, inFlight);
      crashPoint('holds-reconciled');
    }

    // 1. An interrupted upload of this dataset: resume it if its snapshots are still here.
    let resumed = false;
    let partsSkipped = 0;
    if (inFlight && !opts.dryRun) {
      const toOk = snapshots.some((s) => s.guid === inFlight.to.guid && s.shortName === inFlight.to.name);
      const fromOk = inFlight.from === null || (await this.resolveBase(dataset, inFlight.from)) !== null;
      if (toOk && fromOk) {
        this.ctx.log.info(`${dataset}: resuming the interrupted upload of @${inFlight.to.name}`);
        const r = await this.sendStream(manifest, keyring, inFlight, opts, resumeStateOf(manifest, inFlight));
        resumed = true;
        partsSkipped += r.partsSkipped;
        // A requested full stream still has to be sent after an incremental was resumed.
        if (inFlight.to.guid === target.guid && (!opts.full || inFlight.from === null)) {
          return this.result(dataset, inFlight, r, started, { resumed, partsSkipped, reason: null });
        }
      } else {
        this.warn(`${dataset}: the interrupted upload of @${inFlight.to.name} cannot resume (its snapshot is gone); discarding it`);
        await this.discardStream(manifest, inFlight.streamId, 'snapshot destroyed before the upload finished');
      }
    }

    // 2. Base of the incremental: the last pushed snapshot, if it still exists here with the same
    //    guid (or, on OpenZFS, zbk's bookmark of it).
    const last: SnapshotRow | null = manifest.lastPushedSnapshot(dataset);
    if (last && last.guid === target.guid && !opts.full) {
      return this.nothing(dataset, target, started, 'already pushed', resumed, partsSkipped);
    }
    if (opts.full && opts.fullUnlessMadeSince) {
      const before = new Set(opts.fullUnlessMadeSince);
      const made = manifest.streams(dataset).some((x) => x.state === 'complete' && x.kind === 'full' && x.to.guid === target.guid && !before.has(x.streamId));
      if (made) return this.nothing(dataset, target, started, `a full stream of @${target.shortName} was pushed meanwhile`, resumed, partsSkipped);
    }
    let base: BaseRef | null = null;
    let reason: string | null = null;
    if (opts.full) {
      reason = 'a full stream was requested';
    } else if (!last) {
      reason = 'first push of this dataset';
    } else if (last.createtxg >= target.createtxg) {
      return this.nothing(dataset, target, started, `@${target.shortName} is not newer than the last pushed @${last.name}`, resumed, partsSkipped);
    } else {
      base = await this.resolveBase(dataset, last);
      if (!base) reason = `the last pushed snapshot @${last.name} no longer exists locally`;
      else if (base.sendFrom.includes('#')) this.ctx.log.info(`${dataset}: @${last.name} is gone; sending incrementally from zbk's bookmark of it`);
    }
    if (reason) this.ctx.log.info(`${dataset}: sending a full stream: ${reason}`);

    if (opts.dryRun) return this.dryRun(dataset, target, base, reason, started);

    // 3. A new stream.
    const streamId = hex(randomBytes(16));
    const row = manifest.beginStream({
      streamId,
      dataset,
      from: base ? { name: base.name, guid: base.guid } : null,
      to: { name: target.shortName, guid: target.guid, createtxg: target.createtxg, creation: target.creation },
      volumeSize: this.ctx.config.upload.volumeSize,
      partSize: this.ctx.config.upload.partSize,
      startedAt: this.ctx.now(),
      datasetOpaqueId: keyring.opaqueName('dataset', dataset),
    });
    const stream = manifest.stream(row.streamId);
    if (!stream) throw new OperationError(`internal: stream ${streamId} vanished from the manifest`);
    const withVolumes: StreamWithVolumes = { ...stream, volumes: [] };
    const r = await this.sendStream(manifest, keyring, withVolumes, opts, undefined);
    partsSkipped += r.partsSkipped;
    return this.result(dataset, withVolumes, r, started, { resumed, partsSkipped, reason });
  }

  /**
   * Where an incremental from `base` can be sent from: the snapshot itself
   * when it still exists here with the same guid, else zbk's bookmark of it
   * (OpenZFS), else null (a full stream is needed).
   */
  private async resolveBase(dataset: string, base: { name: string; guid: bigint }): Promise<BaseRef | null> {
    const zfs = this.ctx.zfs;
    const snap = (await zfs.listSnapshots(dataset)).find((s) => s.guid === base.guid);
    if (snap) return { name: snap.shortName, guid: snap.guid, sendFrom: snap.name };
    if ((await zfs.capabilities()).bookmarks) {
      const mark = (await zfs.listBookmarks(dataset)).find((b) => b.guid === base.guid);
      if (mark) return { name: base.name, guid: base.guid, sendFrom: mark.name };
    }
    return null;
  }

  /** Holds zbk placed on this dataset's snapshots and has not released yet (kept in the manifest, since zfs-fuse cannot list holds). */
  private recordedHolds(manifest: Manifest, dataset: string): HoldRecord[] {
    const v = manifest.getValue(`holds:${dataset}`);
    return Array.isArray(v) ? (v as HoldRecord[]) : [];
  }

  /** Record first, then hold: a crash in between leaves a record whose release is a no-op. */
  private async placeHold(manifest: Manifest, dataset: string, tag: string, snapshot: string): Promise<void> {
    const held = this.recordedHolds(manifest, dataset);
    if (!held.some((h) => h.tag === tag && h.snapshot === snapshot)) manifest.setValue(`holds:${dataset}`, [...held, { tag, snapshot }]);
    await this.ctx.zfs.hold(tag, full(dataset, snapshot));
  }

  /** Release, then forget. A snapshot that is already gone has no hold to release. */
  private async dropHold(manifest: Manifest, dataset: string, tag: string, snapshot: string): Promise<void> {
    const zfs = this.ctx.zfs;
    if (await zfs.exists(full(dataset, snapshot))) await zfs.release(tag, full(dataset, snapshot));
    manifest.setValue(
      `holds:${dataset}`,
      this.recordedHolds(manifest, dataset).filter((h) => !(h.tag === tag && h.snapshot === snapshot)),
    );
  }

  /**
   * Make zbk's holds match the manifest: the last pushed snapshot (the base
   * of the next incremental) carries the base hold; every other hold zbk
   * recorded (an older base, the send holds of a killed run) is released,
   * except the send holds of `inFlight`, the upload this run resumes: its
   * snapshots stay protected from a pruner without a gap (sendStream takes
   * the same holds again; a later run releases them once that stream is no
   * longer in flight). On OpenZFS the base also gets a bookmark and older
   * zbk bookmarks go.
   */
  private async reconcileHolds(manifest: Manifest, dataset: string, inFlight: StreamWithVolumes | null): Promise<void> {
    const last = manifest.lastPushedSnapshot(dataset);
    const local = last ? (await this.ctx.zfs.listSnapshots(dataset)).find((s) => s.guid === last.guid) : undefined;
    if (local) await this.placeHold(manifest, dataset, BASE_HOLD_TAG, local.shortName);
    const resuming = new Set(inFlight ? [inFlight.to.name, ...(inFlight.from ? [inFlight.from.name] : [])] : []);
    for (const h of this.recordedHolds(manifest, dataset)) {
      if (local && h.tag === BASE_HOLD_TAG && h.snapshot === local.shortName) continue;
      if (h.tag === SEND_HOLD_TAG && resuming.has(h.snapshot)) continue;
      await this.dropHold(manifest, dataset, h.tag, h.snapshot);
    }
    if (local && (await this.ctx.zfs.capabilities()).bookmarks) await this.moveBookmark(dataset, local.shortName);
  }

  private async moveBookmark(dataset: string, snapshot: string): Promise<void> {
    const zfs = this.ctx.zfs;
    const name = `${dataset}#zbk-${snapshot}`;
    try {
      const marks = await zfs.listBookmarks(dataset);
      if (!marks.some((b) => b.name === name)) await zfs.bookmark(full(dataset, snapshot), name);
      for (const b of marks) if (b.shortName.startsWith('zbk-') && b.name !== name) await zfs.destroyBookmark(b.name);
    } catch (err) {
      this.warn(`${dataset}: could not move zbk's bookmark to @${snapshot}: ${err instanceof Error ? err.message : String(err)}`);
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
   * old upload is discarded and the stream restarts afresh under a new id.
   */
  private async sendStream(
    manifest: Manifest,
    keyring: Keyring,
    stream: StreamWithVolumes,
    opts: PushOptions,
    resume: ResumeState | undefined,
  ): Promise<UploadResult> {
    const ds = stream.dataset;
    const held = [stream.to.name, ...(stream.from ? [stream.from.name] : [])];
    const local = new Set((await this.ctx.zfs.listSnapshots(ds)).map((s) => s.shortName));
    for (const s of held) if (local.has(s)) await this.placeHold(manifest, ds, SEND_HOLD_TAG, s);
    try {
      try {
        return await this.uploadOnce(manifest, keyring, stream, opts, resume);
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
        });
        Object.assign(stream, fresh, { volumes: [] });
        return await this.uploadOnce(manifest, keyring, stream, opts, undefined);
      }
    } finally {
      for (const s of held) if (local.has(s)) await this.dropHold(manifest, ds, SEND_HOLD_TAG, s).catch(() => undefined);
    }
  }

  private async uploadOnce(
    manifest: Manifest,
    keyring: Keyring,
    stream: StreamWithVolumes,
    opts: PushOptions,
    resume: ResumeState | undefined,
  ): Promise<UploadResult> {
    const { zfs, store, config } = this.ctx;
    const ds = stream.dataset;
    const caps = await zfs.capabilities();
    const base = stream.from ? await this.resolveBase(ds, stream.from) : null;
    if (stream.from && !base) throw new OperationError(`${ds}: the base @${stream.from.name} of this stream is gone; run the push again to send a full stream`, 'BASE_GONE');
    const from = base ? { from: base.sendFrom } : {};
    const estimate = await zfs.estimateSendSize({ snapshot: full(ds, stream.to.name), ...from }).catch(() => null);
    const send = await zfs.openSend({
      snapshot: full(ds, stream.to.name),
      ...from,
      compressed: caps.compressedSend,
      largeBlocks: caps.largeBlocks,
      embeddedData: caps.embeddedData,
    });
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

    // Stream record first (its presence in the bucket means "complete"), then the manifest.
    const completedAt = this.ctx.now();
    const record: StreamRecord = {
      v: 1,
      streamId: stream.streamId,
      dataset: ds,
      ...snapshotRefsOf(stream),
      plaintextSize: result.plaintextSize,
      storedSize: result.storedSize,
      volumes: result.volumes,
      startedAt: stream.startedAt.toISOString(),
      completedAt: completedAt.toISOString(),
    };
    const sealed = keyring.sealBlob(BLOB_STREAM_RECORD, Buffer.from(JSON.stringify(record), 'utf8'));
    await store.put(streamRecordKey(stream.streamId), sealed, { storageClass: config.store.metaStorageClass });
    crashPoint('stream-record-written');
    manifest.completeStream(stream.streamId, { plaintextSize: result.plaintextSize, storedSize: result.storedSize, completedAt });
    crashPoint('stream-committed');
    await this.reconcileHolds(manifest, ds, null);
    crashPoint('holds-moved');
    await this.mirror(manifest, keyring);
    return result;
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

  private costOf(storedBytes: number, parts: number, volumes: number): { monthly: number; upload: number } {
    const prices = priceTable(this.ctx.config.store.region, this.ctx.config.prices);
    const est = estimatePushCost({ bytes: storedBytes, parts, volumes, storageClass: this.ctx.config.store.dataStorageClass as StorageClass }, prices);
    return { monthly: est.addedMonthly.total, upload: est.oneTime.total };
  }

  private result(
    dataset: string,
    stream: StreamWithVolumes,
    r: UploadResult,
    started: number,
    extra: { resumed: boolean; partsSkipped: number; reason: string | null },
  ): DatasetPushResult {
    const parts = r.volumes.reduce((n, v) => n + v.partCount, 0);
    const cost = this.costOf(r.storedSize, parts, r.volumes.length);
    return {
      dataset,
      snapshot: stream.to.name,
      base: stream.from?.name ?? null,
      kind: stream.from ? 'incremental' : 'full',
      reason: extra.reason,
      plaintextBytes: r.plaintextSize,
      storedBytes: r.storedSize,
      objects: r.volumes.length,
      resumed: extra.resumed,
      partsSkipped: extra.partsSkipped,
      durationSeconds: (Date.now() - started) / 1000,
      estimatedMonthlyCost: cost.monthly,
      estimatedUploadCost: cost.upload,
      estimatedBytes: null,
      streamId: stream.streamId,
      dryRun: false,
    };
  }

  private nothing(
    dataset: string,
    target: Snapshot,
    started: number,
    reason: string,
    resumed: boolean,
    partsSkipped: number,
  ): DatasetPushResult {
    return {
      dataset,
      snapshot: target.shortName,
      base: null,
      kind: 'none',
      reason,
      plaintextBytes: 0,
      storedBytes: 0,
      objects: 0,
      resumed,
      partsSkipped,
      durationSeconds: (Date.now() - started) / 1000,
      estimatedMonthlyCost: 0,
      estimatedUploadCost: 0,
      estimatedBytes: null,
      streamId: null,
      dryRun: false,
    };
  }

  private async dryRun(dataset: string, target: Snapshot, base: BaseRef | null, reason: string | null, started: number): Promise<DatasetPushResult> {
    const estimate = await this.ctx.zfs.estimateSendSize({ snapshot: target.name, ...(base ? { from: base.sendFrom } : {}) }).catch(() => null);
    // Without an estimate (zfs-fuse has no `send -nP`), use the referenced size for a full stream.
    const bytes = estimate ?? (base ? 0 : target.referenced);
    const { partSize, volumeSize } = this.ctx.config.upload;
    const volumes = Math.max(1, Math.ceil(bytes / volumeSize));
    const parts = Math.max(1, Math.ceil(bytes / partSize));
    const cost = this.costOf(bytes, parts, volumes);
    return {
      dataset,
      snapshot: target.shortName,
      base: base?.name ?? null,
      kind: base ? 'incremental' : 'full',
      reason,
      plaintextBytes: 0,
      storedBytes: 0,
      objects: 0,
      resumed: false,
      partsSkipped: 0,
      durationSeconds: (Date.now() - started) / 1000,
      estimatedMonthlyCost: cost.monthly,
      estimatedUploadCost: cost.upload,
      estimatedBytes: estimate,
      streamId: null,
      dryRun: true,
    };
  }
}

/** Library entry point: push datasets with a ready context. */
export function push(ctx: ServiceContext, opts: PushOptions): Promise<PushResult> {
  return new PushService(ctx).run(opts);
}
