/**
 * The staging directory of a restore step: a volume downloaded into it part
 * by part (each part verified and fsynced, so a crash loses at most the part
 * in flight, and its egress counted per month as it arrives), a staged file
 * verified again without the network, and staged copies dropped once their
 * stream is received.
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sealedPartSize } from '../../crypto/index.js';
import { IntegrityError } from '../../errors.js';
import { downloadVolume, type DownloadVolumeOptions, type PlaintextSink } from '../../pipeline/download.js';
import { ArchivedError, RestoreInProgressError } from '../../store/errors.js';
import { clearMismatch, isStoredDamage } from './damage.js';
import { monthOf, recordOf, type JobVolume } from './job.js';
import { NeedsFetchError, OfflineStore } from './offline-store.js';
import type { RestoreStep } from './step.js';
import { requestRestore } from './thaw.js';
import { downloadPacer } from '../bandwidth.js';

/** Verify a staged (or partly staged) file without the network; true when it is whole and authentic. */
export async function verifyOffline(step: RestoreStep, v: JobVolume, path: string, sink?: PlaintextSink): Promise<boolean> {
  try {
    await downloadVolume({
      store: new OfflineStore(),
      keyring: step.keyring,
      volume: recordOf(v),
      streamId: Buffer.from(v.streamId, 'hex'),
      destPath: path,
      sealedSize: sealedPartSize,
      ...openOptions(step, sink),
    });
    return true;
  } catch (err) {
    if (err instanceof NeedsFetchError) return false; // only authenticated parts were fed: the download continues the feed
    if (err instanceof IntegrityError) {
      step.ctx.log.warn(`${err.message}; it will be fetched again`);
      // The whole-volume hash failed after its parts were fed: nothing fed from it may be kept.
      if (sink) await step.abortLive(err);
      return false;
    }
    throw err;
  }
}

/** How downloadVolume opens parts: with this run's opener, into the live receive's buffer pool when fed to it. */
function openOptions(step: RestoreStep, sink?: PlaintextSink): Pick<DownloadVolumeOptions, 'opener' | 'onPlaintext' | 'plaintextBuffers'> {
  if (!sink) return { opener: step.opener };
  return { opener: step.opener, onPlaintext: sink, ...(step.live ? { plaintextBuffers: step.live.feed } : {}) };
}

/** Download `v` into `path` (resuming what is verified there); `sink` gets each part's plaintext for a live receive. */
export async function download(step: RestoreStep, v: JobVolume, path: string, sink?: PlaintextSink): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  v.phase = 'downloading';
  step.save();
  const which = { key: v.key, snapshot: step.streamOf(v).to.name, volumeIndex: v.volumeIndex, storedSize: v.storedSize };
  step.opts.onVolume?.({ event: 'start', ...which });
  let seen = 0;
  const saver = progressSaver(step);
  try {
    await downloadVolume({
      store: step.ctx.store,
      keyring: step.keyring,
      volume: recordOf(v),
      streamId: Buffer.from(v.streamId, 'hex'),
      destPath: path,
      sealedSize: sealedPartSize,
      ...(step.opts.signal ? { signal: step.opts.signal } : {}),
      // [restore] limit / --limit-download: one bucket for every GET of the run.
      pacer: downloadPacer(step.ctx),
      ...openOptions(step, sink),
      onProgress: (p) => {
        const delta = p.downloadedBytes - seen;
        seen = p.downloadedBytes;
        const m = monthOf(step.ctx.now());
        step.job.egressByMonth[m] = (step.job.egressByMonth[m] ?? 0) + delta;
        v.downloadedBytes += delta;
        (v.downloadedByMonth ??= {})[m] = (v.downloadedByMonth[m] ?? 0) + delta;
        step.out.bytes += delta;
        saver.counted();
        step.opts.onProgress?.({
          key: v.key,
          downloadedBytes: p.reusedBytes + p.downloadedBytes,
          storedSize: v.storedSize,
          reusedBytes: p.reusedBytes,
          snapshot: which.snapshot,
          volumeIndex: v.volumeIndex,
          partNumber: p.partNumber,
          partCount: p.partCount,
        });
      },
    });
  } catch (err) {
    // Egress counted since the last save is kept whatever the error (a throw from here on skips the saves below).
    saver.flush();
    if (err instanceof ArchivedError) {
      // The copy expired between HEAD and GET: ask again; the verified prefix stays on disk.
      await requestRestore(step, v);
      return;
    }
    if (err instanceof RestoreInProgressError) return;
    if (isStoredDamage(err)) {
      // The store returns these bytes every time: fetching them again on every run only costs egress.
      step.manifest.logEvent('restore-integrity', step.job.dataset, { key: v.key, message: err.message });
      // The ETag of the bytes that failed: a good copy put back has another one, and verify then clears the record.
      step.damaged(v, err.message, await etagNow(step, v.key));
      return;
    }
    if (err instanceof IntegrityError) {
      v.lastError = err.message;
      step.save();
      step.manifest.logEvent('restore-integrity', step.job.dataset, { key: v.key, message: err.message });
      throw new IntegrityError(`${step.describe(v)} failed verification: ${err.message}`, err.code, { cause: err });
    }
    throw err;
  }
  v.phase = 'staged';
  v.lastError = null;
  step.out.downloaded.push(v.key);
  // It authenticated: an ETag or storage-class mismatch recorded for it was not damage.
  if (clearMismatch(step.manifest, step.job.dataset, v.key)) step.ctx.log.info(`${step.describe(v)} authenticated: the ETag/storage-class mismatch recorded for it is cleared`);
  step.save();
  step.opts.onVolume?.({ event: 'end', ...which });
}

/**
 * How often a download saves the job while it counts egress: a synced
 * SQLite commit of the whole job after every 32 MiB part cost 0.6 CPU s/GB
 * on the main thread (docs/BENCHMARKS.md, the restore profile). It saves
 * once a second or every SAVE_EVERY_BYTES, whichever comes first, and
 * always at the volume's end or error. A crash (power, SIGKILL) between
 * saves under-counts egress by what arrived since the last save — at most
 * about a second of download or 256 MiB, well inside the default
 * `[restore] reserve_gb` of 10 GB kept below the free allowance — and the
 * verified bytes on disk are reused, so nothing is downloaded twice.
 */
export const SAVE_EVERY_MS = 1000;
export const SAVE_EVERY_BYTES = 256 * 1024 * 1024;

function progressSaver(step: RestoreStep): { counted(): void; flush(): void } {
  let lastMs = Date.now();
  let startBytes = step.out.bytes;
  let pending = false;
  const flush = (): void => {
    if (!pending) return;
    step.save();
    pending = false;
    lastMs = Date.now();
    startBytes = step.out.bytes;
  };
  return {
    counted() {
      pending = true;
      if (Date.now() - lastMs >= SAVE_EVERY_MS || step.out.bytes - startBytes >= SAVE_EVERY_BYTES) flush();
    },
    flush,
  };
}

/** The ETag the store reports for `key` now, or null (none, or HEAD failed: the damage is recorded either way). */
async function etagNow(step: RestoreStep, key: string): Promise<string | null> {
  try {
    return (await step.ctx.store.head(key)).etag ?? null;
  } catch {
    return null;
  }
}

/**
 * Drop a received volume's staged copy, and its `.partial` too: a live
 * receive commits at the stream's END record, before the download renames
 * `.partial` into place, so a kill in between leaves only the `.partial`.
 * (`.bad` copies stay: they are the evidence of an integrity failure.)
 */
export async function removeStaged(step: RestoreStep, v: JobVolume): Promise<void> {
  await rm(step.path(v), { force: true });
  await rm(`${step.path(v)}.partial`, { force: true });
}
