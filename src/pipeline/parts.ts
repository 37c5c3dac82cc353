/**
 * Pull-based splitting of a byte stream into fixed-size parts, with one part
 * of look-ahead so every part knows whether it is the stream's last (the
 * sealing format binds a `final` flag, so the writer must know it before
 * sealing).
 */
import type { Readable } from 'node:stream';

/** One part of a stream. */
export interface StreamPart {
  /** Exactly `partSize` bytes, except for the last part (1..partSize bytes, or 0 for an empty stream). */
  data: Buffer;
  /** True for the stream's last part. */
  last: boolean;
}

export interface ReadPartsOptions {
  /** Hand out views of reused buffers instead of a fresh buffer per part (see readParts). */
  reuseBuffer?: boolean;
  /**
   * With `reuseBuffer`: how many buffers to rotate through (default 1). Part
   * k is then a view of buffer k mod `buffers`, overwritten only when part
   * k + `buffers` is filled.
   */
  buffers?: number;
  /** Allocator of the reused buffers (e.g. over a SharedArrayBuffer for a hashing worker); default allocUnsafeSlow. */
  allocate?: (size: number) => Buffer;
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  // A string chunk means someone called setEncoding(): the bytes are no longer the stream's bytes.
  throw new TypeError('readParts: the source must be a byte stream (got a non-binary chunk; do not call setEncoding)');
}

/**
 * Read `source` as consecutive parts of `partSize` bytes.
 *
 * Contract:
 * - Every part but the last has exactly `partSize` bytes; the last has
 *   1..`partSize` bytes. A stream whose length is a multiple of `partSize`
 *   ends with a full part (never a trailing empty one).
 * - An EMPTY stream yields exactly one empty part with `last: true`, so an
 *   empty `zfs send` still produces one valid (authenticated) object and a
 *   restore can tell "empty" from "missing".
 * - Parts are pulled: nothing is read from `source` beyond what the look-ahead
 *   needs, so backpressure reaches the producer (`zfs send` blocks).
 * - Returning early (break/throw in the consumer) destroys `source`.
 *
 * Memory bound: at most two part buffers (the part handed out and the one
 * being filled for the look-ahead) plus one source chunk (≤ the source's
 * highWaterMark), i.e. O(2 × partSize). Each part is a fresh buffer the
 * consumer may keep; bytes are copied once, into a preallocated buffer.
 *
 * With `reuseBuffer`, every part is a view of one of `buffers` (default 1)
 * buffers allocated once and used in turn: part k's bytes are overwritten
 * when the consumer asks for part k + `buffers`, so the consumer must be done
 * with them (or have copied them) by then. With one buffer that is the next
 * `next()`; with two, part k may still be read (e.g. hashed by a worker)
 * while part k + 1 is filled. The bound drops to `buffers` part buffers plus
 * one source chunk, and no fresh pages are faulted in (nor garbage left for
 * the GC) per part.
 */
export async function* readParts(
  source: Readable,
  partSize: number,
  options: ReadPartsOptions = {},
): AsyncGenerator<StreamPart, void, undefined> {
  if (!Number.isSafeInteger(partSize) || partSize <= 0) throw new RangeError(`partSize must be a positive integer, got ${partSize}`);
  const ring = options.buffers ?? 1;
  if (!Number.isSafeInteger(ring) || ring < 1) throw new RangeError(`buffers must be a positive integer, got ${ring}`);
  const shared: Buffer[] = [];
  let filledParts = 0;
  const partBuffer = (): Buffer => {
    if (!options.reuseBuffer) return Buffer.allocUnsafe(partSize);
    const i = filledParts++ % ring;
    // allocUnsafeSlow: a dedicated allocation, never a slice of the shared pool.
    const buf = (shared[i] ??= options.allocate ? options.allocate(partSize) : Buffer.allocUnsafeSlow(partSize));
    if (buf.length < partSize) throw new RangeError(`readParts: allocate(${partSize}) returned ${buf.length} bytes`);
    return buf;
  };
  const it = source[Symbol.asyncIterator]() as AsyncIterator<unknown>;
  // Unconsumed tail of the last chunk read from the source.
  let pending: Buffer | null = null;
  let ended = false;

  /** Fill a fresh buffer with up to partSize bytes; returns the filled view. */
  const fill = async (): Promise<Buffer> => {
    const buf = partBuffer();
    let n = 0;
    while (n < partSize) {
      if (pending === null) {
        if (ended) break;
        const r = await it.next();
        if (r.done) {
          ended = true;
          break;
        }
        const b = toBuffer(r.value);
        if (b.length === 0) continue;
        pending = b;
      }
      const take = Math.min(partSize - n, pending.length);
      pending.copy(buf, n, 0, take);
      n += take;
      pending = take === pending.length ? null : pending.subarray(take);
    }
    return n === partSize ? buf : buf.subarray(0, n);
  };

  /** True when at least one more byte follows (reads ahead one chunk if needed). */
  const more = async (): Promise<boolean> => {
    while (pending === null && !ended) {
      const r = await it.next();
      if (r.done) ended = true;
      else {
        const b = toBuffer(r.value);
        if (b.length > 0) pending = b;
      }
    }
    return pending !== null;
  };

  let finished = false;
  try {
    let current = await fill();
    for (;;) {
      // A short part can only be the last one: the source ended while filling it.
      if (current.length < partSize || !(await more())) {
        finished = true;
        yield { data: current, last: true };
        return;
      }
      yield { data: current, last: false };
      current = await fill();
    }
  } finally {
    // Early exit by the consumer (or an error): stop the producer.
    if (!finished || !ended) await it.return?.();
  }
}
