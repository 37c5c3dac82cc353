/**
 * Restore side of the pipeline: sealed volumes → authenticated plaintext.
 *
 * - `downloadVolume` stages one volume from the store into a local file,
 *   resumably (verified bytes on disk are never fetched twice).
 * - `openVolumeFiles` / `openVolumesFromStore` turn staged files, or objects
 *   read straight from a non-archived store, into the stream's plaintext for
 *   `zfs receive`, releasing a part only after it authenticates.
 */
import { constants as fsConstants, existsSync } from 'node:fs';
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import type { Keyring, PartContext } from '../crypto/types.js';
import { IntegrityError, ObjectIntegrityError } from '../errors.js';
import type { VolumeRecord } from '../layout.js';
import type { ObjectStore, TransferPacer } from '../store/object-store.js';
import { AbortError } from './errors.js';
import { InlinePartOpener, type PartOpener } from './part-opener.js';

/** Where one sealed part lies inside a volume object. */
export interface PartRange {
  /** 1-based multipart part number (partIndex + 1). */
  partNumber: number;
  plainSize: number;
  /** Byte offset of the sealed part in the object. */
  sealedOffset: number;
  sealedSize: number;
}

/**
 * Byte ranges of a volume's sealed parts (pure). Every part but the last
 * holds `volume.partSize` plaintext bytes; the last holds the rest (≥ 1
 * byte, or 0 for the single part of an empty stream).
 * @throws IntegrityError when the record is inconsistent (sizes do not add up).
 */
export function partLayout(volume: VolumeRecord, sealedSize: (plainLen: number) => number): PartRange[] {
  const { partCount, partSize, plaintextSize } = volume;
  const bad = (why: string): never => {
    throw new IntegrityError(`volume record of ${volume.key} is inconsistent: ${why}`);
  };
  if (!Number.isSafeInteger(partCount) || partCount < 1) bad(`part count ${partCount}`);
  if (!Number.isSafeInteger(partSize) || partSize < 1) bad(`part size ${partSize}`);
  const lastPlain = plaintextSize - (partCount - 1) * partSize;
  if (!Number.isSafeInteger(plaintextSize) || lastPlain > partSize || lastPlain < (partCount > 1 ? 1 : 0)) {
    bad(`${plaintextSize} plaintext bytes cannot fill ${partCount} parts of ${partSize}`);
  }
  const out: PartRange[] = [];
  let offset = 0;
  for (let i = 0; i < partCount; i++) {
    const plainSize = i === partCount - 1 ? lastPlain : partSize;
    const s = sealedSize(plainSize);
    out.push({ partNumber: i + 1, plainSize, sealedOffset: offset, sealedSize: s });
    offset += s;
  }
  if (offset !== volume.storedSize) bad(`parts seal to ${offset} bytes but the record says ${volume.storedSize}`);
  return out;
}

/** How a download paces what it receives: the run's bandwidth limit, and the signal that stops a wait for it. */
interface Pacing {
  pacer?: TransferPacer;
  signal?: AbortSignal;
}

/**
 * Read a stream into `buf` exactly; any other length is an error naming
 * `what`. With a pacer, each chunk received is paid for before the next is
 * read: the stream stays paused meanwhile, so the socket's flow control
 * holds the sender back (nothing more is buffered than without a limit).
 */
async function readExact(stream: Readable, buf: Buffer, what: string, pacing: Pacing = {}): Promise<void> {
  let n = 0;
  try {
    for await (const chunk of stream) {
      const b = chunk as Buffer;
      if (n + b.length > buf.length) throw new IntegrityError(`${what}: the store returned more bytes than requested`);
      b.copy(buf, n);
      n += b.length;
      if (pacing.pacer) await pacing.pacer.take(b.length, pacing.signal);
    }
  } finally {
    stream.destroy();
  }
  if (n !== buf.length) throw new IntegrityError(`${what}: the store returned ${n} bytes, expected ${buf.length}`);
}

async function fetchRange(store: ObjectStore, key: string, r: PartRange, buf: Buffer, pacing?: Pacing): Promise<void> {
  const stream = await store.get(key, { start: r.sealedOffset, end: r.sealedOffset + r.sealedSize - 1 });
  await readExact(stream, buf, `part ${r.partNumber} of ${key}`, pacing);
}

async function readAt(fh: FileHandle, buf: Buffer, position: number): Promise<boolean> {
  let n = 0;
  while (n < buf.length) {
    const { bytesRead } = await fh.read(buf, n, buf.length - n, position + n);
    if (bytesRead === 0) return false;
    n += bytesRead;
  }
  return true;
}

/**
 * IntegrityError code of data that came from the store and is wrong: a part
 * fetched from it that fails authentication, or a volume whose parts all
 * authenticated but whose plaintext SHA-256 differs from the stream record.
 * Fetching it again gives the same bytes (unlike a damaged staged file,
 * which is fetched again).
 */
export const STORED_DATA_DAMAGED = 'STORED_DATA_DAMAGED';

/**
 * Authenticate and decrypt part `r` of `volume` with `opener` into `out`,
 * appending it to hash `token`; an authentication failure becomes an
 * IntegrityError naming the part, the object and `where` it was read.
 */
async function openWith(opener: PartOpener, token: number, streamId: Uint8Array, volume: VolumeRecord, r: PartRange, partCount: number, sealed: Uint8Array, out: Uint8Array, where: string): Promise<Uint8Array> {
  const ctx: PartContext = { streamId, volumeIndex: volume.index, partIndex: r.partNumber - 1, final: r.partNumber === partCount };
  try {
    return await opener.open(token, ctx, sealed, out);
  } catch (err) {
    if (err instanceof IntegrityError) {
      const code = where === 'downloaded' ? STORED_DATA_DAMAGED : 'INTEGRITY';
      throw new ObjectIntegrityError(`part ${r.partNumber} of ${volume.key} (${where}) failed authentication: corrupted, truncated or not this stream's data`, volume.key, code, { cause: err });
    }
    throw err;
  }
}

/** Parts fetched ahead of the one being opened (each a ranged GET running at once). */
const PREFETCH = 2;

async function writeAt(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < buf.length) {
    const { bytesWritten } = await fh.write(buf, written, buf.length - written, position + written);
    written += bytesWritten;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const dh = await open(dirname(path), fsConstants.O_RDONLY);
  try {
    await dh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await dh.close();
  }
}

export interface DownloadProgress {
  /**
   * Sealed bytes fetched from the store by this call so far (cumulative):
   * egress, counted when a part's GET has returned all its bytes, see
   * downloadVolume.
   */
  downloadedBytes: number;
  /** Sealed bytes verified on disk and not fetched (no egress). */
  reusedBytes: number;
  /** The part just counted (1-based). */
  partNumber: number;
  partCount: number;
}

/**
 * Takes one part's authenticated plaintext, as consecutive chunks
 * (`partIndex` is 0-based within the volume). Ownership of the chunks
 * passes to the sink: the caller never writes them again. The returned
 * promise is the backpressure: the next part is not handed over before it
 * settles.
 */
export type PlaintextSink = (partIndex: number, chunks: Buffer[]) => Promise<void>;

export interface DownloadVolumeOptions {
  store: ObjectStore;
  keyring: Keyring;
  volume: VolumeRecord;
  streamId: Uint8Array;
  /** Final staging file; work in progress lives in `destPath + '.partial'`. */
  destPath: string;
  sealedSize(plainLen: number): number;
  signal?: AbortSignal;
  /**
   * A bandwidth limit on the sealed bytes received (the run's shared
   * pacer, src/pipeline/bandwidth.ts), applied to every ranged GET as its
   * bytes arrive. Absent: as fast as the store sends.
   */
  pacer?: TransferPacer;
  onProgress?(p: DownloadProgress): void;
  /**
   * Gets every part's plaintext in order, each only after the part
   * authenticated (parts verified on disk included), so a consumer such as
   * `zfs receive` can run while the volume is still being fetched. The
   * whole-volume SHA-256 is only known at the end: a consumer must treat
   * what it got as provisional until downloadVolume resolves.
   */
  onPlaintext?: PlaintextSink;
  /**
   * Opens the parts (default: inline on this thread with `keyring`). A
   * restore passes one shared WorkerPartOpener for all its volumes.
   */
  opener?: PartOpener;
  /**
   * With `onPlaintext`: where each part's plaintext is opened. Buffers must
   * come from `opener.allocate` (PlaintextFeed's pool does). A part that
   * fails to open gives its buffer back with `release`; one lost on another
   * failure is simply never reused (the pool then allocates afresh).
   * Default: a fresh buffer per part.
   */
  plaintextBuffers?: PlaintextBuffers;
}

/** A source of plaintext part buffers that are reused once their consumer is done with them (PlaintextFeed). */
export interface PlaintextBuffers {
  /** A buffer of at least `size` bytes, now owned by the caller. */
  acquire(size: number): Buffer;
  /** `buf` (from acquire) was not handed to the consumer and may be reused. */
  release(buf: Uint8Array): void;
}

/**
 * Stage one volume (sealed bytes, as stored) into `destPath`, resumably.
 *
 * Contract:
 * - Work goes to `destPath.partial`. On start, the sealed parts already
 *   there (and an existing `destPath`, which is re-verified) are opened
 *   with the keyring. A part that fails with whole parts staged after it is
 *   fetched again on its own and written in place (without `onPlaintext`;
 *   with it, and otherwise, the file is truncated at the first missing or
 *   bad part); only what is missing is fetched, one ranged GET per part. Two
 *   GETs run ahead of the part being opened (parts k+1 and k+2 while part
 *   k is opened), part k's write to the staging file overlaps opening part
 *   k+1, and so does the sink's handling of part k; a crash loses at most
 *   those parts not yet on disk (a torn write is found when the file is
 *   verified on restart), never a verified byte on disk. The written parts
 *   are synced in the background as the download goes on, so the final
 *   sync has little left.
 * - Every fetched part authenticates before it is written or handed on.
 * - At the end the whole volume's plaintext SHA-256 must equal
 *   `volume.plaintextSha256`; otherwise the file is moved to `destPath.bad`
 *   and IntegrityError (naming the object) is thrown. On success the file is
 *   fsynced and renamed to `destPath`.
 * - Store errors propagate (ArchivedError when not restored yet); the
 *   verified prefix stays on disk for the next attempt.
 *
 * Egress accounting (what `downloadedBytes` and `onProgress` report): a
 * part's sealed bytes count as downloaded as soon as its GET has returned
 * all of them, before the part is opened, and whether or not it then
 * authenticates, is written or handed on, so a part that fails
 * authentication, a failed write or sink, or an abort after a part (or the
 * prefetched next one) arrived does not hide the egress it cost. Each part
 * is fetched at most once per call and counted once, with its own
 * `onProgress` call; that call is made before downloadVolume settles, also
 * when it rejects (a GET still running at an error is awaited first), so a
 * caller summing `onProgress` sees every counted byte. A GET that fails
 * before it returned all bytes is not counted. Parts verified on disk are
 * `reusedBytes`, never `downloadedBytes`.
 *
 * Parts are opened by `opener` (a worker thread in a restore), which also
 * keeps the volume's running hash; sealed buffers are the opener's scratch
 * buffers, reused from one volume to the next.
 *
 * Memory bound: four sealed parts (one being written, one being opened,
 * two being fetched) plus one plaintext part (≈ 5 × partSize); with
 * `onPlaintext`, plus the parts the sink still holds (PlaintextFeed: its
 * high-water mark and pool).
 */
export async function downloadVolume(opts: DownloadVolumeOptions): Promise<{ downloadedBytes: number; reusedBytes: number }> {
  const { store, keyring, volume, streamId, destPath, signal } = opts;
  const sink = opts.onPlaintext;
  const opener = opts.opener ?? new InlinePartOpener(keyring);
  const layout = partLayout(volume, opts.sealedSize);
  const partial = `${destPath}.partial`;
  if (existsSync(destPath)) await rename(destPath, partial); // re-verified like any partial download

  const fh = await open(partial, existsSync(partial) ? 'r+' : 'w+', 0o600);
  let closed = false;
  // The sink's handling of the previous part, still running while this one is opened.
  let feeding: Promise<void> | null = null;
  // GETs still running (prefetched parts).
  const inFlight = new Set<Promise<unknown>>();
  // The write of the previous part to the staging file, still running while this one is opened.
  let writing: Promise<void> | null = null;
  // A data sync of what is written so far, running in the background (see flushBehind).
  let flushing: Promise<void> | null = null;
  let flushError: unknown = null;
  const hashToken = opener.beginVolume();
  let digested = false;
  try {
    const maxSealed = Math.max(...layout.map((r) => r.sealedSize));
    // Sealed buffers used in turn: part k−1 being written, part k being opened, parts k+1 … k+PREFETCH being fetched.
    const sealedBufs = Array.from({ length: PREFETCH + 2 }, (_, i) => opener.scratch(i, maxSealed));
    // Without a sink the plaintext only feeds the hash: one reused buffer.
    const plainBuf = sink ? undefined : opener.scratch(PREFETCH + 2, volume.partSize);
    const buffers: PlaintextBuffers = opts.plaintextBuffers ?? { acquire: (n) => opener.allocate(n), release: () => undefined };
    let reusedBytes = 0;
    let downloadedBytes = 0;
    /** Authenticate part `r` (IntegrityError otherwise) and hash it; the plaintext when there is a sink. */
    const openPart = async (r: PartRange, sealed: Uint8Array, where: string): Promise<Buffer[]> => {
      const out = plainBuf ?? buffers.acquire(r.plainSize);
      let plain: Uint8Array;
      try {
        plain = await openWith(opener, hashToken, streamId, volume, r, layout.length, sealed, out, where);
      } catch (err) {
        if (!plainBuf) buffers.release(out);
        throw err;
      }
      return sink ? [Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength)] : [];
    };

    // The volume's last part reaches the sink only after the whole-volume
    // SHA-256 matched: `zfs receive` commits as soon as it reads a stream's
    // END record, so a later failure could no longer stop it.
    let held: { index: number; chunks: Buffer[] } | null = null;
    const feed = async (r: PartRange, chunks: Buffer[]): Promise<void> => {
      if (!sink) return;
      if (r.partNumber === layout.length) held = { index: r.partNumber - 1, chunks };
      else await sink(r.partNumber - 1, chunks);
    };

    /** Part `r` came from the store whole: that is egress, whatever happens to it next. */
    const arrived = (r: PartRange): void => {
      downloadedBytes += r.sealedSize;
      opts.onProgress?.({ downloadedBytes, reusedBytes, partNumber: r.partNumber, partCount: layout.length });
    };

    // Verify what an earlier attempt left behind.
    const onDisk = (await fh.stat()).size;
    const wholeOnDisk = (k: number): boolean => k < layout.length && layout[k]!.sealedOffset + layout[k]!.sealedSize <= onDisk;
    let next = 0;
    for (; next < layout.length; next++) {
      const r = layout[next]!;
      if (!wholeOnDisk(next)) break;
      const sealed = sealedBufs[0]!.subarray(0, r.sealedSize);
      if (!(await readAt(fh, sealed, r.sealedOffset))) break;
      let chunks: Buffer[];
      try {
        chunks = await openPart(r, sealed, 'staged');
        reusedBytes += r.sealedSize;
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        // A damaged part with staged parts after it: fetch just this one again, in
        // place, and go on verifying (a flipped bit must not cost the rest of the
        // volume's egress, or a new thaw). With a sink, parts must reach it in order
        // as they verify, so the download goes on from here as before.
        if (sink || !wholeOnDisk(next + 1)) break;
        await fetchRange(store, volume.key, r, sealed);
        arrived(r);
        chunks = await openPart(r, sealed, 'downloaded');
        await writeAt(fh, sealed, r.sealedOffset);
      }
      await feed(r, chunks);
    }
    const validEnd = next < layout.length ? layout[next]!.sealedOffset : volume.storedSize;
    if (onDisk !== validEnd) await fh.truncate(validEnd);
    /**
     * Start syncing the parts written so far, unless a sync still runs: the
     * disk writes them back while later parts are fetched and opened, and
     * the final sync that makes the volume durable has little left to do
     * (one sync of the whole volume at its end stalled the pipeline for as
     * long as the disk took to write it). A failure is kept and thrown
     * before the volume counts as staged: Linux reports a writeback error to
     * one sync only, so the final sync could succeed after it.
     */
    const flushBehind = (): void => {
      if (flushing) return;
      flushing = fh.datasync().then(
        () => {
          flushing = null;
        },
        (err: unknown) => {
          flushing = null;
          flushError ??= err;
        },
      );
    };
    const fetchInto = (k: number): Promise<Buffer> => {
      const r = layout[k]!;
      const buf = sealedBufs[k % sealedBufs.length]!.subarray(0, r.sealedSize);
      const p = fetchRange(store, volume.key, r, buf, { ...(opts.pacer ? { pacer: opts.pacer } : {}), ...(signal ? { signal } : {}) }).then(() => {
        arrived(r);
        return buf;
      });
      inFlight.add(p);
      // Awaited below (or in finally); this only avoids an unhandled rejection in between.
      p.then(
        () => inFlight.delete(p),
        () => inFlight.delete(p),
      );
      return p;
    };
    // Parts k+1 … k+PREFETCH are fetched while part k is opened, part k−1 is
    // written and part k handed on: neither the network nor the disk waits for
    // the CPU. Part k+PREFETCH goes into part k−2's buffer, whose write was
    // awaited before part k−1's began.
    const ahead: Promise<Buffer>[] = [];
    let fetched = next;
    const fetchAhead = (): void => {
      while (fetched < layout.length && ahead.length < PREFETCH && !signal?.aborted) ahead.push(fetchInto(fetched++));
    };
    fetchAhead();
    for (; next < layout.length; next++) {
      if (signal?.aborted) throw new AbortError('download aborted', { cause: signal.reason });
      // A failed background sync stops the download now, not after the rest of the volume was paid for.
      if (flushError !== null) throw flushError;
      const r = layout[next]!;
      const sealed = await ahead.shift()!;
      fetchAhead();
      const chunks = await openPart(r, sealed, 'downloaded');
      if (writing) await writing;
      flushBehind();
      writing = writeAt(fh, sealed, r.sealedOffset);
      // Awaited before the next write, after the loop or in finally; this only avoids an unhandled rejection.
      writing.catch(() => undefined);
      // Part k−1 may still wait for the sink (zfs is busy with what it has): part k was opened meanwhile.
      if (feeding) await feeding;
      feeding = feed(r, chunks);
      // Awaited before the next part is handed on, after the loop or in finally.
      feeding.catch(() => undefined);
    }
    if (feeding) await feeding;
    if (writing) await writing;
    if (flushing) await flushing;
    if (flushError !== null) throw flushError;

    const digest = await opener.digest(hashToken);
    digested = true;
    if (digest !== volume.plaintextSha256) {
      await fh.close();
      closed = true;
      await rename(partial, `${destPath}.bad`);
      throw new IntegrityError(
        `volume ${volume.key}: plaintext SHA-256 ${digest} does not match the stream record (${volume.plaintextSha256}); kept as ${destPath}.bad`,
        STORED_DATA_DAMAGED,
      );
    }
    const last = held as { index: number; chunks: Buffer[] } | null;
    if (sink && last) await sink(last.index, last.chunks);
    await fh.sync();
    await fh.close();
    closed = true;
    await rename(partial, destPath);
    await fsyncDir(destPath);
    return { downloadedBytes, reusedBytes };
  } finally {
    if (!digested) opener.discard(hashToken);
    // A GET still running would write into a buffer nobody reads: let it settle
    // first (if it completes, `arrived` counts it before we return or throw).
    await Promise.allSettled([...inFlight]);
    if (feeding) await Promise.allSettled([feeding]);
    if (writing) await Promise.allSettled([writing]);
    if (flushing) await Promise.allSettled([flushing]);
    if (!closed) await fh.close();
  }
}

/**
 * A byte Readable that a producer fills with backpressure (`write` resolves
 * when the consumer wants more), e.g. the input of `zfs receive` fed by
 * downloads as their parts authenticate. Once the consumer is gone
 * (destroyed), writes are dropped and resolve at once, so a producer that
 * also stages data to disk can carry on; the consumer's failure is its own
 * to report.
 *
 * `fail` may come before any consumer listens (e.g. while `zfs receive` is
 * still starting): the readable keeps a no-op 'error' listener, so that is
 * no uncaught exception; a consumer attached later finds the error in
 * `readable.errored` (async iteration, `pipeline` and `finished` reject
 * with it; `zfs.receive` checks it before it pipes).
 *
 * Buffer pool (PlaintextBuffers): `acquire` hands out part buffers that are
 * reused once the consumer reported, through `written` (zfs.receive's
 * `onWritten`), that every byte written from them has left this process. A
 * buffer is never reused before that, and never after the feed failed (the
 * dead consumer's pipe may still hold a reference). When none is free, a
 * fresh buffer is returned, so a buffer that is never given back costs
 * memory churn, never a stall.
 *
 * Memory bound: `highWaterMark` plus one write (a write is accepted while
 * less than `highWaterMark` bytes wait), plus the pool (`poolSize` buffers).
 */
export class PlaintextFeed implements PlaintextBuffers {
  readonly readable: Readable;
  private wake: (() => void) | null = null;
  private wanted = false;
  private finished = false;
  private failed = false;
  /** Bytes pushed into `readable` so far, and bytes the consumer reported written. */
  private pushed = 0;
  private taken = 0;
  private readonly pool: { buf: Buffer; state: 'free' | 'out' | 'queued'; releaseAt: number }[] = [];
  private readonly allocate: (size: number) => Buffer;
  private readonly poolSize: number;

  constructor(opts: { highWaterMark?: number; allocate?: (size: number) => Buffer; poolSize?: number } = {}) {
    this.allocate = opts.allocate ?? ((n) => Buffer.allocUnsafeSlow(n));
    this.poolSize = opts.poolSize ?? 3;
    this.readable = new Readable({
      ...(opts.highWaterMark !== undefined ? { highWaterMark: opts.highWaterMark } : {}),
      read: () => this.signalDemand(),
      destroy: (err, cb) => {
        this.finished = true;
        // The consumer is gone while its pipe may still read our buffers: never reuse them.
        if (!this.readable.readableEnded) this.failed = true;
        this.signalDemand();
        cb(err);
      },
    });
    // The failure is the producer's own (fail); a consumer sees it via `errored`, not this event alone.
    this.readable.on('error', () => undefined);
  }

  acquire(size: number): Buffer {
    if (!this.failed) {
      const free = this.pool.find((e) => e.state === 'free' && e.buf.length >= size);
      if (free) {
        free.state = 'out';
        return free.buf;
      }
      if (this.pool.length < this.poolSize) {
        const e = { buf: this.allocate(size), state: 'out' as const, releaseAt: 0 };
        this.pool.push(e);
        return e.buf;
      }
    }
    return this.allocate(size);
  }

  release(buf: Uint8Array): void {
    const e = this.pool.find((x) => x.buf.buffer === buf.buffer);
    if (e?.state === 'out') e.state = 'free';
  }

  /** The consumer has taken `bytes` more bytes, in order, and holds no reference to them. */
  written(bytes: number): void {
    this.taken += bytes;
    for (const e of this.pool) if (e.state === 'queued' && e.releaseAt <= this.taken) e.state = 'free';
  }

  private signalDemand(): void {
    this.wanted = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Queue `chunks` (ownership passes to the feed); resolves when the consumer wants more. */
  async write(chunks: readonly Buffer[]): Promise<void> {
    let more = true;
    this.wanted = false;
    for (const c of chunks) {
      if (this.finished) return;
      if (c.length === 0) continue;
      more = this.readable.push(c);
      this.pushed += c.length;
      const e = this.pool.find((x) => x.buf.buffer === c.buffer);
      if (e) {
        e.state = 'queued';
        e.releaseAt = this.pushed;
      }
    }
    if (more || this.wanted || this.finished) return;
    await new Promise<void>((resolve) => {
      this.wake = resolve;
    });
  }

  /** The last chunk was written. */
  end(): void {
    if (this.finished) return;
    this.finished = true;
    this.readable.push(null);
  }

  /** Abort: the consumer gets `err` as the stream's error (zfs receive is killed before it sees EOF). */
  fail(err: Error): void {
    this.finished = true;
    this.failed = true;
    this.signalDemand();
    if (!this.readable.destroyed) this.readable.destroy(err);
  }
}

/** Reads the sealed bytes of one part of one volume into `buf`. */
type SealedReader = (volume: VolumeRecord, r: PartRange, buf: Buffer) => Promise<void>;

interface VolumeSource {
  record: VolumeRecord;
  /** Checks before the first part (sizes); returns the reader and a cleanup. */
  begin(): Promise<{ read: SealedReader; end(): Promise<void> }>;
}

/**
 * The plaintext of `volumes` in order. Each part is authenticated before its
 * plaintext is yielded; each volume's plaintext hash is checked at its end.
 * One part is prefetched while the previous one is opened and consumed.
 */
async function* plaintextOf(opener: PartOpener, streamId: Uint8Array, volumes: VolumeSource[], sealedSize: (n: number) => number): AsyncGenerator<Buffer> {
  for (let i = 0; i < volumes.length; i++) {
    const { record } = volumes[i]!;
    if (record.index !== i) throw new IntegrityError(`volume ${i} of the stream is missing (got volume ${record.index} in its place)`);
    const layout = partLayout(record, sealedSize);
    const { read, end } = await volumes[i]!.begin();
    const pending = new Set<Promise<Buffer>>();
    const token = opener.beginVolume();
    let digested = false;
    try {
      let lastPlain: Uint8Array | null = null;
      const fetch = (r: PartRange): Promise<Buffer> => {
        const buf = opener.allocate(r.sealedSize);
        const p = read(record, r, buf).then(() => buf);
        // Kept until awaited; the no-op handler avoids an unhandled rejection if the consumer stops first.
        p.catch(() => undefined);
        pending.add(p);
        return p;
      };
      let ahead = fetch(layout[0]!);
      for (let k = 0; k < layout.length; k++) {
        const r = layout[k]!;
        const sealed = await ahead;
        pending.delete(ahead);
        if (k + 1 < layout.length) ahead = fetch(layout[k + 1]!);
        // A fresh buffer per part: its ownership passes to the consumer.
        const plain = await openWith(opener, token, streamId, record, r, layout.length, sealed, opener.allocate(r.plainSize), 'read');
        // The last part waits for the whole-volume hash (zfs receive commits at the stream's END record).
        if (k === layout.length - 1) lastPlain = plain;
        else if (plain.length > 0) yield Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
      }
      const digest = await opener.digest(token);
      digested = true;
      if (digest !== record.plaintextSha256) {
        throw new IntegrityError(`volume ${record.key}: plaintext SHA-256 does not match the stream record`);
      }
      if (lastPlain && lastPlain.length > 0) yield Buffer.from(lastPlain.buffer, lastPlain.byteOffset, lastPlain.byteLength);
    } finally {
      if (!digested) opener.discard(token);
      await Promise.allSettled(pending);
      await end();
    }
  }
}

function toReadable(gen: AsyncGenerator<Buffer>): Readable {
  // objectMode false: byte stream for `zfs receive`; the default byte
  // highWaterMark is below one part, so at most one part waits in the buffer.
  return Readable.from(gen, { objectMode: false });
}

export interface OpenVolumeFilesOptions {
  keyring: Keyring;
  /** Opens the parts (default: inline with `keyring`); a restore passes its worker. */
  opener?: PartOpener;
  streamId: Uint8Array;
  /** Every volume of the stream, in order, with its staged file (as written by downloadVolume). */
  volumes: { record: VolumeRecord; path: string }[];
  sealedSize(plainLen: number): number;
}

/**
 * A plaintext Readable over staged volume files, in order, for `zfs receive`.
 * A part's plaintext is released only after the part authenticates; any
 * failure (wrong size, tampering, wrong order, hash mismatch) is an
 * IntegrityError emitted as the stream's error. Backpressure is respected
 * (nothing is read ahead of the consumer beyond one part).
 *
 * Memory bound: ≈ 3 parts (one prefetched sealed part, one being opened,
 * one buffered plaintext part).
 */
export function openVolumeFiles(opts: OpenVolumeFilesOptions): Readable {
  const sources: VolumeSource[] = opts.volumes.map(({ record, path }) => ({
    record,
    begin: async () => {
      const size = (await stat(path)).size;
      if (size !== record.storedSize) throw new IntegrityError(`staged volume ${path} is ${size} bytes, the record says ${record.storedSize}`);
      const fh = await open(path, 'r');
      return {
        read: async (_v, r, buf) => {
          if (!(await readAt(fh, buf, r.sealedOffset))) throw new IntegrityError(`staged volume ${path} ended early`);
        },
        end: () => fh.close(),
      };
    },
  }));
  return toReadable(plaintextOf(opts.opener ?? new InlinePartOpener(opts.keyring), opts.streamId, sources, opts.sealedSize));
}

export interface OpenVolumesFromStoreOptions {
  store: ObjectStore;
  keyring: Keyring;
  /** Opens the parts (default: inline with `keyring`). */
  opener?: PartOpener;
  streamId: Uint8Array;
  /** Every volume of the stream, in order. */
  volumes: VolumeRecord[];
  sealedSize(plainLen: number): number;
  /** A bandwidth limit on the sealed bytes received (see DownloadVolumeOptions.pacer). */
  pacer?: TransferPacer;
}

/**
 * Like `openVolumeFiles`, reading each part with a ranged GET straight from
 * a store whose objects are readable now (local store, restored copies).
 * Used by `verify --deep` and demo restores. Each volume's stored size is
 * checked with `head` first (an extended or truncated object is an
 * IntegrityError); store errors (ArchivedError …) are emitted as-is.
 *
 * Memory bound: ≈ 3 parts, as for `openVolumeFiles`.
 */
export function openVolumesFromStore(opts: OpenVolumesFromStoreOptions): Readable {
  const { store } = opts;
  const sources: VolumeSource[] = opts.volumes.map((record) => ({
    record,
    begin: async () => {
      const info = await store.head(record.key);
      if (info.size !== record.storedSize) throw new IntegrityError(`object ${record.key} is ${info.size} bytes, the record says ${record.storedSize}`);
      return { read: (v, r, buf) => fetchRange(store, v.key, r, buf, opts.pacer ? { pacer: opts.pacer } : {}), end: async () => undefined };
    },
  }));
  return toReadable(plaintextOf(opts.opener ?? new InlinePartOpener(opts.keyring), opts.streamId, sources, opts.sealedSize));
}
