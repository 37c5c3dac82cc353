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
  /** Hand out views of one reused buffer instead of a fresh buffer per part (see readParts). */
  reuseBuffer?: boolean;
  /** Allocator of the reused buffer (e.g. over a SharedArrayBuffer for a hashing worker); default allocUnsafeSlow. */
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
 * With `reuseBuffer`, every part is a view of ONE buffer allocated once and
 * overwritten when the consumer asks for the next part: the consumer must be
 * done with `data` (or have copied it) before calling `next()` again. The
 * bound drops to one part buffer plus one source chunk, and no fresh pages
 * are faulted in (nor garbage left for the GC) per part.
 */
export async function* readParts(
  source: Readable,
  partSize: number,
  options: ReadPartsOptions = {},
): AsyncGenerator<StreamPart, void, undefined> {
  if (!Number.isSafeInteger(partSize) || partSize <= 0) throw new RangeError(`partSize must be a positive integer, got ${partSize}`);
  let shared: Buffer | null = null;
  const partBuffer = (): Buffer => {
    if (!options.reuseBuffer) return Buffer.allocUnsafe(partSize);
    // allocUnsafeSlow: a dedicated allocation, never a slice of the shared pool.
    shared ??= options.allocate ? options.allocate(partSize) : Buffer.allocUnsafeSlow(partSize);
    if (shared.length < partSize) throw new RangeError(`readParts: allocate(${partSize}) returned ${shared.length} bytes`);
    return shared;
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
