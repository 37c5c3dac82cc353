/** What `zbk push` reports per dataset (the object `zbk push --json` prints), and its cost estimate. Pure. */
import { configPriceTable } from '../../cost/providers/index.js';
import type { ZbkConfig } from '../../config/config.js';
import { estimatePushCost } from '../../cost/model.js';
import { type StorageClass } from '../../cost/prices.js';
import type { StreamRow } from '../../manifest/types.js';
import type { UploadResult } from '../../pipeline/upload.js';
import type { PushSnapshot as Snapshot } from './source.js';

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
  /** One-time request cost (USD): multipart requests (Create and UploadPart at the S3 Standard rate, Complete at the class rate) + metadata PUTs. */
  estimatedUploadCost: number;
  /**
   * Parts of the volume being uploaded are billed at S3 Standard storage
   * rates until it completes (multipart staging): USD per day the upload
   * runs, at the mean in flight (half a volume).
   */
  estimatedStagingCostPerDay: number;
  /** `zfs send -nP` estimate of the stream (the one sent, or that would be with --dry-run), null where zfs cannot tell. */
  estimatedBytes: number | null;
  /**
   * Bytes the cost estimates assume: what was stored; with --dry-run the
   * estimate, else for a full stream the snapshot's referenced size (0 when unknown).
   */
  costBytes: number;
  /** The `zfs send` flags of the stream (e.g. `["-w", "-c", "-L", "-e"]`; `-i <base>` not included); null when nothing is sent. */
  sendFlags: string[] | null;
  streamId: string | null;
  dryRun: boolean;
}

/** A stream sent and uploaded: the upload's result, the `zfs send -nP` estimate and the flags it was sent with. */
export interface SentStream {
  upload: UploadResult;
  estimatedBytes: number | null;
  sendFlags: string[];
}

function costOf(config: ZbkConfig, storedBytes: number, parts: number, volumes: number): { monthly: number; upload: number; stagingPerDay: number } {
  const prices = configPriceTable(config.store, config.prices);
  const est = estimatePushCost(
    { bytes: storedBytes, parts, volumes, volumeBytes: config.upload.volumeSize, storageClass: config.store.dataStorageClass as StorageClass },
    prices,
  );
  return { monthly: est.addedMonthly.total, upload: est.oneTime.total, stagingPerDay: est.staging.perDay };
}

/** A stream was pushed (or resumed to its end). */
export function pushedResult(
  config: ZbkConfig,
  dataset: string,
  stream: Pick<StreamRow, 'streamId' | 'from' | 'to'>,
  sent: SentStream,
  started: number,
  extra: { resumed: boolean; partsSkipped: number; reason: string | null },
): DatasetPushResult {
  const r = sent.upload;
  const parts = r.volumes.reduce((n, v) => n + v.partCount, 0);
  const cost = costOf(config, r.storedSize, parts, r.volumes.length);
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
    estimatedStagingCostPerDay: cost.stagingPerDay,
    estimatedBytes: sent.estimatedBytes,
    costBytes: r.storedSize,
    sendFlags: sent.sendFlags,
    streamId: stream.streamId,
    dryRun: false,
  };
}

/** Nothing to push, and why. */
export function nothingResult(
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
    estimatedStagingCostPerDay: 0,
    estimatedBytes: null,
    costBytes: 0,
    sendFlags: null,
    streamId: null,
    dryRun: false,
  };
}

/** What a push would send, from the `zfs send -nP` estimate (null where zfs cannot tell). */
export function dryRunResult(
  config: ZbkConfig,
  d: { dataset: string; target: Snapshot; base: string | null; reason: string | null; sendFlags: string[]; estimate: number | null; started: number },
): DatasetPushResult {
  // Without an estimate (zfs-fuse has no `send -nP`), use the referenced size for a full stream.
  const bytes = d.estimate ?? (d.base ? 0 : d.target.referenced);
  const { partSize, volumeSize } = config.upload;
  const volumes = Math.max(1, Math.ceil(bytes / volumeSize));
  const parts = Math.max(1, Math.ceil(bytes / partSize));
  const cost = costOf(config, bytes, parts, volumes);
  return {
    dataset: d.dataset,
    snapshot: d.target.shortName,
    base: d.base,
    kind: d.base ? 'incremental' : 'full',
    reason: d.reason,
    plaintextBytes: 0,
    storedBytes: 0,
    objects: 0,
    resumed: false,
    partsSkipped: 0,
    durationSeconds: (Date.now() - d.started) / 1000,
    estimatedMonthlyCost: cost.monthly,
    estimatedUploadCost: cost.upload,
    estimatedStagingCostPerDay: cost.stagingPerDay,
    estimatedBytes: d.estimate,
    costBytes: bytes,
    sendFlags: d.sendFlags,
    streamId: null,
    dryRun: true,
  };
}
