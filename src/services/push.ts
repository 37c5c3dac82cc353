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
import { BLOB_STREAM_RECORD, DATA_PREFIX, VOLUME_META_HEADER, streamRecordKey, type StreamRecord } from '../layout.js';
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

  /**
   * Multipart uploads the manifest does not know are orphans (billed at
   * Standard rates forever): abort them. Safe only under the manifest lock.
   */
  async abortOrphans(manifest: Manifest): Promise<number> {
    const known = new Set(manifest.inFlightUploads().map((u) => u.uploadId));
    let aborted = 0;
    for (const u of await this.ctx.store.listMultipartUploads(DATA_PREFIX)) {
      if (known.has(u.uploadId)) continue;
      await this.ctx.store.abortMultipartUpload(u.key, u.uploadId);
      manifest.logEvent('orphan-aborted', null, { key: u.key, initiated: u.initiated.toISOString() });
      aborted++;
    }
    if (aborted > 0) this.ctx.log.info(`aborted ${aborted} orphan multipart upload(s) unknown to the manifest`);
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
    const byGuid = new Map(snapshots.map((s) => [s.guid, s]));

    // 1. An interrupted upload of this dataset: resume it if its snapshots are still here.
    let resumed = false;
    let partsSkipped = 0;
    const inFlight = manifest.findInFlightStream(dataset);
    if (inFlight && !opts.dryRun) {
      const toOk = byGuid.get(inFlight.to.guid)?.shortName === inFlight.to.name;
      const fromOk = inFlight.from === null || byGuid.get(inFlight.from.guid)?.shortName === inFlight.from.name;
      if (toOk && fromOk) {
        this.ctx.log.info(`${dataset}: resuming the interrupted upload of @${inFlight.to.name}`);
        const r = await this.sendStream(manifest, keyring, inFlight, opts, resumeStateOf(manifest, inFlight));
        resumed = true;
        partsSkipped += r.partsSkipped;
        if (inFlight.to.guid === target.guid) {
          return this.result(dataset, inFlight, r, started, { resumed, partsSkipped, reason: null });
        }
      } else {
        this.warn(`${dataset}: the interrupted upload of @${inFlight.to.name} cannot resume (its snapshot is gone); discarding it`);
        await this.discardStream(manifest, inFlight, 'snapshot destroyed before the upload finished');
      }
    }

    // 2. Base of the incremental: the last pushed snapshot, if it still exists here with the same guid.
    const last: SnapshotRow | null = manifest.lastPushedSnapshot(dataset);
    if (last && last.guid === target.guid && !opts.full) {
      return this.nothing(dataset, target, last, started, 'already pushed', resumed, partsSkipped);
    }
    let base: Snapshot | null = null;
    let reason: string | null = null;
    if (opts.full) {
      reason = 'a full stream was requested';
    } else if (!last) {
      reason = 'first push of this dataset';
    } else {
      const local = byGuid.get(last.guid);
      if (!local) reason = `the last pushed snapshot @${last.name} no longer exists locally`;
      else if (local.createtxg >= target.createtxg) {
        return this.nothing(dataset, target, last, started, `@${target.shortName} is not newer than the last pushed @${last.name}`, resumed, partsSkipped);
      } else base = local;
    }
    if (reason) this.ctx.log.info(`${dataset}: sending a full stream: ${reason}`);

    if (opts.dryRun) return this.dryRun(dataset, target, base, reason, started);

    // 3. A new stream.
    const streamId = hex(randomBytes(16));
    const row = manifest.beginStream({
      streamId,
      dataset,
      from: base ? { name: base.shortName, guid: base.guid } : null,
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

  /** Abort a stream's in-flight uploads and mark it abandoned. */
  private async discardStream(manifest: Manifest, stream: StreamWithVolumes, why: string): Promise<void> {
    for (const v of stream.volumes) {
      if (v.uploadId) {
        await this.ctx.store.abortMultipartUpload(v.key, v.uploadId);
        manifest.recordUploadAborted(v.key, v.uploadId);
      }
    }
    manifest.abandonStream(stream.streamId, why);
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
    const zfs = this.ctx.zfs;
    const ds = stream.dataset;
    const toFull = full(ds, stream.to.name);
    const fromFull = stream.from ? full(ds, stream.from.name) : undefined;
    const held = [toFull, ...(fromFull ? [fromFull] : [])];
    for (const s of held) await zfs.hold(SEND_HOLD_TAG, s);
    try {
      try {
        return await this.uploadOnce(manifest, keyring, stream, opts, resume);
      } catch (err) {
        if (!(err instanceof ResumeMismatchError)) throw err;
        // The re-run send produced different bytes than the checkpoints: never
        // mix them. Discard the old upload and start a fresh stream.
        this.warn(`${ds}: resumed data differs from what was uploaded before (${err.message}); restarting @${stream.to.name} from scratch`);
        await this.discardStream(manifest, stream, 'resume mismatch');
        const fresh = manifest.beginStream({
          streamId: hex(randomBytes(16)),
          dataset: ds,
          from: stream.from,
          to: stream.to,
          volumeSize: this.ctx.config.upload.volumeSize,
          partSize: this.ctx.config.upload.partSize,
          startedAt: this.ctx.now(),
        });
        Object.assign(stream, fresh, { volumes: [] });
        return await this.uploadOnce(manifest, keyring, stream, opts, undefined);
      }
    } finally {
      for (const s of held) await zfs.release(SEND_HOLD_TAG, s).catch(() => undefined);
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
    const estimate = await zfs
      .estimateSendSize({ snapshot: full(ds, stream.to.name), ...(stream.from ? { from: full(ds, stream.from.name) } : {}) })
      .catch(() => null);
    const send = zfs.send({
      snapshot: full(ds, stream.to.name),
      ...(stream.from ? { from: full(ds, stream.from.name) } : {}),
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
    const previousBase = manifest.lastPushedSnapshot(ds);
    manifest.completeStream(stream.streamId, { plaintextSize: result.plaintextSize, storedSize: result.storedSize, completedAt });
    crashPoint('stream-committed');
    await this.moveBaseHold(ds, stream.to.name, previousBase?.name ?? null, caps.bookmarks);
    crashPoint('holds-moved');
    await this.mirror(manifest, keyring);
    return result;
  }

  /** Protect the new base (hold, plus a bookmark where supported); release the old base's hold. */
  private async moveBaseHold(dataset: string, newBase: string, oldBase: string | null, bookmarks: boolean): Promise<void> {
    const zfs = this.ctx.zfs;
    await zfs.hold(BASE_HOLD_TAG, full(dataset, newBase));
    if (bookmarks) {
      await zfs.bookmark(full(dataset, newBase), `${dataset}#zbk-${newBase}`).catch((err: unknown) => {
        this.warn(`${dataset}: could not bookmark @${newBase}: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
    if (oldBase && oldBase !== newBase) {
      await zfs.release(BASE_HOLD_TAG, full(dataset, oldBase)).catch(() => undefined);
    }
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
    _last: SnapshotRow,
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

  private async dryRun(dataset: string, target: Snapshot, base: Snapshot | null, reason: string | null, started: number): Promise<DatasetPushResult> {
    const estimate = await this.ctx.zfs.estimateSendSize({ snapshot: target.name, ...(base ? { from: base.name } : {}) }).catch(() => null);
    // Without an estimate (zfs-fuse has no `send -nP`), use the referenced size for a full stream.
    const bytes = estimate ?? (base ? 0 : target.referenced);
    const { partSize, volumeSize } = this.ctx.config.upload;
    const volumes = Math.max(1, Math.ceil(bytes / volumeSize));
    const parts = Math.max(1, Math.ceil(bytes / partSize));
    const cost = this.costOf(bytes, parts, volumes);
    return {
      dataset,
      snapshot: target.shortName,
      base: base?.shortName ?? null,
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
